"""Load test of the intake service on 127.0.0.1: workflow triggers per second held and their
p50/p99 latency at a fixed concurrency, then how many accepted triggers are missing from the
source (must be 0). PostgreSQL (a throwaway database on 127.0.0.1:5432) and SQLite, each for
--seconds; the floor in the same run: the same load answered 401 (HTTP and authentication, no
write). At most 60 s of load in all with the defaults.

    python bench/intake_load.py [--seconds 15] [--concurrency 32]

The service runs as configured (`NOTIF_EXPORT_INTAKE_PROCESSES`: on PostgreSQL, by default, a
process per usable CPU). Besides triggers/s it prints the CPU time per trigger, of the service
and of the whole machine. A closed loop of N clients holds at most N / latency calls/s: at 16
clients and ~15 ms a call (a group commit), that is ~1,000/s whatever the service could take.

The load comes from a separate process speaking HTTP/1.1 keep-alive on raw asyncio streams
(no client library in the way), one connection per concurrent client; each trigger has its
own $idempotency_key, so each accepted one must be a `requests` row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from notif_export.dev.local_s3 import find_free_port, wait_for_port  # noqa: E402
from notif_export.lib.execution_model import WORKFLOWS  # noqa: E402
from notif_export.lib.settings import Settings  # noqa: E402
from notif_export.lib.source import TABLES, SourceDatabase  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
KEYS = {"NOTIF_EXPORT_INTAKE_WORKSPACE_KEY": "ws_bench_0123456789abcdef",
        "NOTIF_EXPORT_INTAKE_API_KEY": "bench-api-key-0123456789"}


# ---- the load generator (its own process) -----------------------------------------------------
async def _client(host: str, port: int, prefix: str, n: int, token: str, stop_at: float, latencies: list,
                  codes: dict) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    slugs = list(WORKFLOWS)
    i = 0
    while time.monotonic() < stop_at:
        key = f"{prefix}-{n}-{i}"
        body = json.dumps({"workflow": slugs[i % len(slugs)], "recipients": [f"user_{n}_{i}"],
                           "data": {"i": i}, "$idempotency_key": key}).encode()
        request = (f"POST /trigger/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        code = int(head.split(b" ", 2)[1])
        codes[code] = codes.get(code, 0) + 1
        i += 1
    writer.close()


async def _load(port: int, concurrency: int, seconds: float, prefix: str, token: str) -> dict:
    latencies: list[float] = []
    codes: dict[int, int] = {}
    started = time.monotonic()
    await asyncio.gather(*(_client("127.0.0.1", port, prefix, n, token, started + seconds, latencies, codes)
                           for n in range(concurrency)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"requests": len(latencies), "per_second": len(latencies) / elapsed, "codes": codes,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


# ---- the orchestration --------------------------------------------------------------------------
def _start(source_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, **KEYS, "NOTIF_EXPORT_SOURCE_URL": source_url,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # Its log goes to a file: a pipe nobody reads during the load would stall the server once full.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "notif_export.cli", "intake", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for_port(port, proc, "the intake service")
    except RuntimeError as exc:
        proc.kill()
        log.seek(0)
        raise SystemExit(f"{exc}: {log.read().decode(errors='replace')}") from None
    return proc


def _run_load(port: int, concurrency: int, seconds: float, prefix: str, token: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--generate", str(port), "--concurrency", str(concurrency),
                          "--seconds", str(seconds), "--prefix", prefix, "--token", token],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _service_cpu_seconds(proc: subprocess.Popen) -> float:
    """CPU time of the service: its process and its workers."""
    parent = psutil.Process(proc.pid)
    return sum(t.user + t.system for t in (p.cpu_times() for p in (parent, *parent.children(recursive=True))))


def _machine_cpu_seconds() -> float:
    busy = psutil.cpu_times()
    return busy.user + busy.nice + busy.system + busy.irq + busy.softirq


def measure(name: str, source_url: str, concurrency: int, seconds: float, floor: bool) -> None:
    port = find_free_port()
    proc = _start(source_url, port)
    processes = Settings.from_env({**os.environ, "NOTIF_EXPORT_SOURCE_URL": source_url}).intake_processes
    source = SourceDatabase(source_url)
    try:
        _run_load(port, concurrency, 1, f"warmup-{uuid.uuid4().hex[:6]}", KEYS["NOTIF_EXPORT_INTAKE_API_KEY"])
        if floor:
            result = _run_load(port, concurrency, seconds / 3, "floor", "not-the-key")
            print(f"floor (401, no write)  {result['per_second']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
                  f"p99 {result['p99_ms']:6.1f} ms  codes {result['codes']}", flush=True)
        prefix = f"run-{uuid.uuid4().hex[:8]}"
        service_cpu, machine_cpu = _service_cpu_seconds(proc), _machine_cpu_seconds()
        result = _run_load(port, concurrency, seconds, prefix, KEYS["NOTIF_EXPORT_INTAKE_API_KEY"])
        service_cpu, machine_cpu = _service_cpu_seconds(proc) - service_cpu, _machine_cpu_seconds() - machine_cpu
        accepted = result["codes"].get("202", 0)
        table = TABLES["requests"]
        with source.connect() as conn:
            found = conn.execute(sa.select(sa.func.count()).select_from(table).where(
                table.c.idempotency_key.like(f"{prefix}-%"))).scalar()
            executions = conn.execute(sa.select(sa.func.count()).select_from(TABLES["workflow_executions"])).scalar()
            messages = conn.execute(sa.select(sa.func.count()).select_from(TABLES["messages"])).scalar()
        print(f"{name:<22} {result['per_second']:8.0f} triggers/s  p50 {result['p50_ms']:6.1f} ms  "
              f"p99 {result['p99_ms']:6.1f} ms  at {concurrency} clients for {seconds:g} s; {accepted:,} accepted, "
              f"{accepted - found} missing from the source; source now {found:,} requests of this run, "
              f"{executions:,} step logs, {messages:,} messages in all; codes {result['codes']}", flush=True)
        per_trigger = 1000 / max(accepted, 1)
        print(f"{'':<22} CPU per trigger: the service {service_cpu * per_trigger:.2f} ms ({processes} process"
              f"{'es' if processes > 1 else ''}), the whole machine {machine_cpu * per_trigger:.2f} ms "
              f"(the database and the load generator included; {os.cpu_count()} cores)", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        source.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="load per source (default 15)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    parser.add_argument("--generate", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        print(json.dumps(asyncio.run(_load(args.generate, args.concurrency, args.seconds, args.prefix, args.token))))
        return
    print(f"intake load: single-recipient workflow triggers, {os.cpu_count()} cores", flush=True)
    if args.only in (None, "postgresql"):
        name = f"notif_export_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
            measure("PostgreSQL source", url, args.concurrency, args.seconds, floor=True)
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            measure("SQLite source", f"sqlite:///{tmp}/source.db", args.concurrency, args.seconds,
                    floor=args.only == "sqlite")


if __name__ == "__main__":
    main()
