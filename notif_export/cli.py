"""`notif-export`: set up the source, simulate traffic, run the local S3 server and the demo."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
from botocore.exceptions import BotoCoreError, ClientError

from notif_export.dev.demo import DemoError, intake_keys_file, run_demo
from notif_export.dev.local_s3 import DEFAULT_PORT, LocalS3Error, LocalS3Server
from notif_export.dev.simulator import Simulator, TrafficMix, utc_now
from notif_export.lib import (
    analytics,
    bucket_check,
    dagster_api,
    query,
    report,
    verify,
    warehouses,
)
from notif_export.lib.contract import DATA_POINTS
from notif_export.lib.duckdb_s3 import connect_to_bucket
from notif_export.lib.export import rewrite_hour
from notif_export.lib.hours import HourError, describe_hours, hour_key, parse_hour
from notif_export.lib.settings import Settings, SettingsError
from notif_export.lib.source import SourceDatabase, SourceError


class CannotCheck(RuntimeError):
    """A command could not do its check (the bucket or the source cannot be read): exit 2."""


def _settings() -> Settings:
    return Settings.from_env(os.environ)


def cmd_source_init(args: argparse.Namespace) -> None:
    source = SourceDatabase(_settings().source_url)
    source.init_schema()
    print(f"source schema ready in {source.display_url}")


def _stop_on_signals() -> list[bool]:
    stopping = [False]

    def handler(signum, _frame):
        stopping[0] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stopping


def cmd_simulate(args: argparse.Namespace) -> None:
    source = SourceDatabase(_settings().source_url)
    source.init_schema()
    mix = TrafficMix(
        requests_per_hour=args.rate, bulk_share=args.bulk_share, event_share=args.event_share,
        broadcast_share=args.broadcast_share, request_failure_rate=args.failure_rate,
    )
    sim = Simulator(source, seed=args.seed, mix=mix)
    if args.history:
        started = time.monotonic()
        counts = sim.history(args.history, utc_now())
        print(f"history of {args.history:g} h written in {time.monotonic() - started:.1f}s: "
              + ", ".join(f"{n} {name}" for name, n in counts.items()), flush=True)
    if args.live:
        client = _intake_client(args.intake) if args.intake else None
        stopping = _stop_on_signals()
        deadline = time.monotonic() + args.duration if args.duration else None
        last = utc_now()
        print(f"live traffic at {args.rate:g} requests/hour"
              f"{f' through the intake service at {args.intake}' if client else ''}; Ctrl-C stops", flush=True)
        while not stopping[0] and (deadline is None or time.monotonic() < deadline):
            time.sleep(args.tick)
            now = utc_now()
            if client is not None:  # the service records the calls and applies the status changes
                sent = sim.send(sim.traffic(last, now, now), client)
                if sent["accepted"] or sent["refused"]:
                    print(f"{now:%H:%M:%S} {sent['accepted']} calls accepted, {sent['refused']} refused", flush=True)
            else:
                written = sim.write(sim.traffic(last, now, now))
                changed = sim.advance(now)
                if written["requests"] or changed:
                    print(f"{now:%H:%M:%S} +{written['requests']} requests, +{written['messages']} messages, "
                          f"{changed} status changes", flush=True)
            last = now


def _intake_client(url: str):
    """The platform's SDK pointed at an intake service, signing with the intake settings' keys."""
    from suprsend import Suprsend

    keys = _settings().intake
    keys.require()
    if not keys.workspace_secret:
        return Suprsend.with_workspace_api_key(keys.workspace_key, keys.api_key, base_url=url)
    return Suprsend(keys.workspace_key, keys.workspace_secret, base_url=url)


def cmd_s3_serve(args: argparse.Namespace) -> None:
    config = _settings()
    running = LocalS3Server.of(config.home / "s3")
    if running.running_pid():
        raise LocalS3Error(f"a local S3 server already runs on {running.endpoint_url} with its data in "
                           f"{running.data_dir} (the demo's?); point a shell at it: eval \"$(notif-export s3 env)\"")
    server = LocalS3Server(config.home / "s3", port=args.port).start(buckets=(config.destination.bucket,))
    print(f"local S3 server on {server.endpoint_url}, bucket {config.destination.bucket!r}, data in {server.data_dir}")
    print("point a shell at it with: eval \"$(notif-export s3 env)\"; Ctrl-C stops", flush=True)
    stopping = _stop_on_signals()
    try:
        while not stopping[0] and server.running_pid():
            time.sleep(0.5)
    finally:
        server.stop()
        print("local S3 server stopped")


def cmd_s3_env(args: argparse.Namespace) -> None:
    server = LocalS3Server.of(_settings().home / "s3")
    if not server.running_pid():
        print(f"notif-export: note: no local S3 server is running with its data in {server.data_dir}; "
              "these variables work once it runs", file=sys.stderr)
    for name, value in server.aws_env().items():
        print(f"export {name}={value}")


def cmd_check(args: argparse.Namespace) -> None:
    config = _settings()
    items = bucket_check.check_bucket(config.bucket_access, config.destination)
    for item in items:
        print(item.render())
    if bucket_check.failed(items):
        raise SystemExit(1)


def cmd_dbt(args: argparse.Namespace) -> None:
    """dbt with the environment the export's settings give (bucket, files, credentials)."""
    config = _settings()
    credentials = config.bucket_access.session().get_credentials()
    env = {**analytics.dbt_env(config), **analytics.secrets_env(credentials, config.dbt.bigquery_token)}
    raise SystemExit(analytics.run_dbt(args.dbt_args, env, os.environ))


def cmd_verify(args: argparse.Namespace) -> None:
    """Compare the bucket with the source hour by hour; exit 0 (equal), 1 (drift), 2 (could not check)."""
    config = _settings()
    now = utc_now()
    start, end, settled_before = verify.recent_window(config, now)
    cold = verify.cold_tolerance(config, now)
    start = parse_hour(args.start, "--from") if args.start else start
    end = parse_hour(args.end, "--to") + timedelta(hours=1) if args.end else end
    source = SourceDatabase(config.source_url)
    source.check_schema()
    s3 = config.bucket_access.s3_client()
    results = []
    try:
        with duckdb.connect() as con:
            connect_to_bucket(con, config.bucket_access)
            for name in args.data_point or config.data_points:
                dp = DATA_POINTS[name]

                def check() -> verify.Verification:
                    return verify.verify(source, s3, config.destination, dp, start, end, con, settled_before, cold)

                def repair(hours: list) -> None:
                    for hour in hours:
                        rewrite_hour(source, s3, config.destination, dp, hour, created_before=utc_now())

                results.append(verify.reconcile(check, repair if args.repair else None))
    except (BotoCoreError, ClientError, duckdb.Error) as exc:
        raise CannotCheck(f"could not read the bucket {config.destination.bucket!r}: {exc}") from None
    finally:
        source.dispose()
    print(f"hours {hour_key(start)} to {hour_key(end - timedelta(hours=1))}; rows updated after "
          f"{settled_before:%Y-%m-%d %H:%M:%S} UTC are the sync's and left out")
    if cold:
        print(f"cold hours (up to {hour_key(cold.newest_cold_hour)}, NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS): rows updated "
              f"after {cold.settled_before:%Y-%m-%d %H:%M:%S} UTC wait for the sync's cadence and are left out")
    for line in verify.render([found for found, _ in results]):
        print(line)
    remaining = [after if after is not None else found for found, after in results]
    if args.repair and any(after is not None for _, after in results):
        print(f"repaired {sum(len(found.drift) for found, _ in results)} hours; verified again:")
        for line in verify.render(remaining):
            print(line)
    if any(v.drift for v in remaining):
        raise SystemExit(1)


def cmd_query(args: argparse.Namespace) -> None:
    """DuckDB over the export: SQL from the argument, from stdin, or typed at a prompt."""
    config = _settings()

    def note(message: str) -> None:
        print(f"note: {message}", file=sys.stderr, flush=True)

    try:
        con = query.export_connection(config, analytics=False, note=note)
    except (BotoCoreError, ClientError, duckdb.Error) as exc:
        raise CannotCheck(f"could not read the bucket {config.destination.bucket!r}: {exc}") from None
    with con:
        if args.sql is None and sys.stdin.isatty():
            query.interactive_shell(con, config, args.max_rows)
            return
        try:
            with query.analytics_attached(con, config, note):
                query.run_sql(con, sys.stdin.read() if args.sql is None else args.sql, args.csv, args.max_rows)
        except duckdb.Error as exc:
            print(f"notif-export query: {exc}", file=sys.stderr)
            raise SystemExit(1) from None


def cmd_backfill(args: argparse.Namespace) -> None:
    """A backfill of the export assets in the running Dagster, as the UI launches one."""
    config = _settings()
    data_points = args.data_point or list(config.data_points)
    now = utc_now()
    if args.start or args.end:
        first = max(parse_hour(args.start, "--from") if args.start else config.start, config.start)
        last = min(parse_hour(args.end, "--to") if args.end else now, now)
        hours = [first + timedelta(hours=n) for n in range(int((last - first) / timedelta(hours=1)) + 1)]
        if not hours:
            raise HourError(f"no hour between --from and --to is a partition (they start at {config.start_key})")
        keys: list[str] | None = [hour_key(h) for h in hours]
        which = describe_hours(hours)
    else:
        keys, which = None, f"every hour since {config.start_key}"
    backfill_id = dagster_api.launch_backfill(config.dagster_url, data_points, keys, "notif-export backfill")
    print(f"backfill {backfill_id}: {', '.join(data_points)}, {which}; "
          f"{config.dagster_url}/runs/b/{backfill_id}", flush=True)
    if args.wait:
        while (status := dagster_api.backfill_status(config.dagster_url, backfill_id)) in dagster_api.BACKFILL_RUNNING:
            time.sleep(2)
        print(f"backfill {backfill_id}: {status.lower()}")
        if status not in dagster_api.BACKFILL_SUCCEEDED:
            raise SystemExit(1)


def cmd_warehouse_ddl(args: argparse.Namespace) -> None:
    config = _settings()
    print(warehouses.external_tables_ddl(args.target, config.destination, args.schema, args.connection))


def cmd_demo(args: argparse.Namespace) -> None:
    """Everything on embedded defaults: local S3, SQLite with simulated history, live traffic, UI."""
    run_demo(_settings(), args.port, args.s3_port, args.seed, args.history_hours, args.intake_port)


def cmd_report(args: argparse.Namespace) -> None:
    """The analytics report: one self-contained HTML page from the analytics database."""
    config = _settings()
    output = args.output or config.home / "report.html"
    shown = report.write_report(config, output, args.days)
    print(f"report of {shown.start:%Y-%m-%d %H:00} to {shown.end:%Y-%m-%d %H:00} UTC written to {output}")


def cmd_intake_serve(args: argparse.Namespace) -> None:
    """The trigger and event API on HTTP, recording each call in the source."""
    from notif_export.intake.app import serve  # the web stack only for this command

    config = _settings()
    serve(config, args.host, args.port)


def cmd_intake_env(args: argparse.Namespace) -> None:
    """The demo's intake keys and URL as shell exports (keys the demo generated for itself)."""
    path = intake_keys_file(_settings().home)
    if not path.exists():
        print(f"notif-export: note: no demo intake keys in {path}: start the demo first, or set the "
              "NOTIF_EXPORT_INTAKE_* variables yourself", file=sys.stderr)
        return
    for line in path.read_text().split():
        name, _, value = line.partition("=")
        print(f"export {name}={shlex.quote(value)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notif-export", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    source = sub.add_parser("source", help="the source database").add_subparsers(dest="action", required=True)
    source.add_parser("init", help="create the tables and indexes (harmless to repeat)").set_defaults(func=cmd_source_init)

    defaults = TrafficMix()
    simulate = sub.add_parser("simulate", help="write simulated traffic into the source")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--history", type=float, default=0, metavar="HOURS", help="fill the past HOURS")
    simulate.add_argument("--live", action="store_true", help="keep producing traffic until stopped")
    simulate.add_argument("--duration", type=float, default=0, metavar="SECONDS", help="stop --live after this long")
    simulate.add_argument("--tick", type=float, default=1.0, metavar="SECONDS", help="--live write interval")
    simulate.add_argument("--rate", type=float, default=defaults.requests_per_hour, help="API requests per hour")
    simulate.add_argument("--bulk-share", type=float, default=defaults.bulk_share)
    simulate.add_argument("--event-share", type=float, default=defaults.event_share)
    simulate.add_argument("--broadcast-share", type=float, default=defaults.broadcast_share)
    simulate.add_argument("--failure-rate", type=float, default=defaults.request_failure_rate)
    simulate.add_argument("--intake", metavar="URL", help="--live: send the traffic as API calls through the "
                          "platform's SDK to the intake service at URL instead of writing the source")
    simulate.set_defaults(func=cmd_simulate)

    s3 = sub.add_parser("s3", help="the local S3 server (SeaweedFS)").add_subparsers(dest="action", required=True)
    serve = s3.add_parser("serve", help="run it on 127.0.0.1 until Ctrl-C, with the bucket created")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.set_defaults(func=cmd_s3_serve)
    s3_env = s3.add_parser("env", help="print the AWS_* variables that point at it: eval \"$(notif-export s3 env)\"")
    s3_env.set_defaults(func=cmd_s3_env)

    intake = sub.add_parser("intake", help="the trigger and event API (a SuprSend-compatible front door)"
                            ).add_subparsers(dest="action", required=True)
    intake_serve = intake.add_parser("serve", help="serve it until Ctrl-C, recording each call in the source")
    intake_serve.add_argument("--host", default="127.0.0.1")
    intake_serve.add_argument("--port", type=int, default=8080)
    intake_serve.set_defaults(func=cmd_intake_serve)
    intake_env = intake.add_parser("env", help="print the demo's intake keys and URL as exports: "
                                   "eval \"$(notif-export intake env)\"")
    intake_env.set_defaults(func=cmd_intake_env)

    sub.add_parser("check", help="check the bucket setup item by item; exits 1 on any failure").set_defaults(func=cmd_check)

    dbt = sub.add_parser("dbt", help="run dbt on dbt_project/ with the export's settings, e.g. `dbt build`")
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER, help="dbt's own arguments")
    dbt.set_defaults(func=cmd_dbt)

    check_files = sub.add_parser("verify", help="compare the bucket with the source hour by hour; exit 0 equal, "
                                 "1 drift, 2 could not check")
    check_files.add_argument("--from", dest="start", metavar="HOUR",
                             help="first hour (default: the reconciliation window, 7 days)")
    check_files.add_argument("--to", dest="end", metavar="HOUR", help="last hour (default: the current one)")
    check_files.add_argument("--data-point", action="extend", nargs="+", choices=list(DATA_POINTS), metavar="NAME",
                             help="data points to check (default: NOTIF_EXPORT_DATA_POINTS)")
    check_files.add_argument("--repair", action="store_true", help="rewrite the drifted hours and verify again")
    check_files.set_defaults(func=cmd_verify)

    sql = sub.add_parser("query", help="SQL over the bucket's files (views messages, requests, workflow_executions) "
                         "and the analytics database (analytics.<model>); a prompt without SQL")
    sql.add_argument("sql", nargs="?", help="statements to run (default: read from stdin, or a prompt in a terminal)")
    sql.add_argument("--csv", action="store_true", help="print the result as CSV")
    sql.add_argument("--max-rows", type=int, default=100, help="rows shown in a table (default 100)")
    sql.set_defaults(func=cmd_query)

    backfill = sub.add_parser("backfill", help="backfill the export assets in the running Dagster (its UI's "
                              "Backfills page shows it); every hour by default")
    backfill.add_argument("--from", dest="start", metavar="HOUR", help="first hour (default: NOTIF_EXPORT_START)")
    backfill.add_argument("--to", dest="end", metavar="HOUR", help="last hour (default: the current one)")
    backfill.add_argument("--data-point", action="extend", nargs="+", choices=list(DATA_POINTS), metavar="NAME",
                          help="data points to backfill (default: NOTIF_EXPORT_DATA_POINTS)")
    backfill.add_argument("--wait", action="store_true", help="wait until it has finished; exit 1 if it failed")
    backfill.set_defaults(func=cmd_backfill)

    ddl = sub.add_parser("warehouse-ddl", help="print the DDL of the external tables over the files")
    ddl.add_argument("--target", choices=warehouses.TARGETS, required=True)
    ddl.add_argument("--schema", default="notif_export_raw", help="dataset (BigQuery) or database (Athena)")
    ddl.add_argument("--connection", default="", help="BigQuery: the Omni connection to the bucket's AWS region")
    ddl.set_defaults(func=cmd_warehouse_ddl)

    demo = sub.add_parser("demo", help="local S3 + SQLite history + live traffic + Dagster UI")
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port")
    demo.add_argument("--s3-port", type=int, default=DEFAULT_PORT)
    demo.add_argument("--intake-port", type=int, default=8080, help="the intake service's port")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--history-hours", type=float, default=24, help="history simulated into a new source")
    demo.set_defaults(func=cmd_demo)

    report_page = sub.add_parser("report", help="write the delivery and error report, one HTML page viewable offline")
    report_page.add_argument("--output", type=Path, metavar="PATH", help="default: $NOTIF_EXPORT_HOME/report.html")
    report_page.add_argument("--days", type=int, default=7, help="the days up to the newest hour with messages")
    report_page.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SystemExit as exc:  # check and dbt end with their own exit code
        return exc.code if isinstance(exc.code, int) else 1
    except (SettingsError, SourceError, LocalS3Error, warehouses.WarehouseError, HourError, CannotCheck,
            DemoError, dagster_api.DagsterApiError, report.ReportError) as exc:
        print(f"notif-export: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
