"""The `notif-export` command: source init, deterministic simulation, clear errors."""

import sqlalchemy as sa

from notif_export.cli import main
from notif_export.lib.source import TABLES, SourceDatabase


def table_dump(url: str, name: str) -> list[tuple]:
    db = SourceDatabase(url)
    table = TABLES[name]
    with db.connect() as conn:
        rows = conn.execute(sa.select(table.c.idempotency_key, table.c.tenant_id)
                            .order_by(table.c.created_at, table.c.idempotency_key, table.c.updated_at)).all()
    db.dispose()
    return rows


def test_source_init_twice_is_harmless(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIF_EXPORT_HOME", str(tmp_path))
    assert main(["source", "init"]) == 0
    assert main(["source", "init"]) == 0
    assert sa.inspect(sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")).get_table_names() == \
        ["messages", "requests", "workflow_executions"]


def test_simulate_is_deterministic_for_a_seed(tmp_path, monkeypatch, capsys):
    urls = []
    for run in ("a", "b"):
        url = f"sqlite:///{tmp_path / run}.db"
        monkeypatch.setenv("NOTIF_EXPORT_SOURCE_URL", url)
        assert main(["simulate", "--seed", "3", "--history", "2", "--rate", "300"]) == 0
        urls.append(url)
    assert "history of 2 h written" in capsys.readouterr().out
    for name in TABLES:
        dump = table_dump(urls[0], name)
        assert dump and dump == table_dump(urls[1], name)


def test_bad_setting_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("NOTIF_EXPORT_LAYOUT", "flat")
    assert main(["source", "init"]) == 2
    assert "NOTIF_EXPORT_LAYOUT='flat' is not a layout; use one of: shared, per_type" in capsys.readouterr().err


def test_check_prints_each_item_and_fails_on_a_missing_bucket(aws_env, bucket, monkeypatch, capsys):
    monkeypatch.setenv("NOTIF_EXPORT_BUCKET", bucket)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "PASS  s3:PutObject" in out and "PASS  objects encrypted: AES256 on every write" in out
    monkeypatch.setenv("NOTIF_EXPORT_BUCKET", bucket + "-gone")
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  bucket exists: there is no bucket named '{bucket}-gone'" in out and "fix: create it first" in out
    assert aws_env["AWS_SECRET_ACCESS_KEY"] not in out


def test_verify_exits_1_on_drift_repairs_it_and_2_when_it_cannot_check(aws_env, bucket, s3, tmp_path, monkeypatch,
                                                                        capsys):
    from datetime import datetime, timedelta, timezone

    from notif_export.dev.simulator import Simulator
    from notif_export.lib.contract import DATA_POINTS
    from notif_export.lib.destination import Destination
    from notif_export.lib.export import rewrite_hour
    from notif_export.lib.hours import hour_key
    from notif_export_tests.conftest import NOW

    url = f"sqlite:///{tmp_path / 'source.db'}"
    monkeypatch.setenv("NOTIF_EXPORT_SOURCE_URL", url)
    monkeypatch.setenv("NOTIF_EXPORT_BUCKET", bucket)
    db = SourceDatabase(url)
    db.init_schema()
    Simulator(db, seed=2).history(2, NOW)
    hours = [(NOW - timedelta(hours=h)).replace(minute=0, second=0, microsecond=0) for h in (2, 1, 0)]
    dest = Destination(bucket=bucket)
    for dp in DATA_POINTS.values():
        for hour in hours:
            rewrite_hour(db, s3, dest, dp, hour)
    window = ["--from", hour_key(hours[0]), "--to", hour_key(hours[-1])]
    assert main(["verify", *window]) == 0
    assert "messages: 3 hours" in capsys.readouterr().out

    s3.delete_object(Bucket=bucket, Key=dest.object_key("requests", hours[1]))
    assert main(["verify", *window, "--data-point", "requests"]) == 1
    out = capsys.readouterr().out
    assert f"requests             {hour_key(hours[1])}" in out and "1 hours drifted" in out

    assert main(["verify", *window, "--data-point", "requests", "--repair"]) == 0
    assert "repaired 1 hours; verified again:" in capsys.readouterr().out
    assert main(["verify", *window]) == 0
    capsys.readouterr()

    # A row of a cold hour changed 30 minutes ago: drift, unless the sync's cadence for cold hours
    # (60 minutes) may still be holding it back.
    import sqlalchemy as sa

    from notif_export.lib.source import TABLES

    table = TABLES["messages"]
    with db.connect() as conn:
        conn.execute(table.update().where(table.c.message_id == conn.execute(
            sa.select(table.c.message_id).where(table.c.message_id.is_not(None),
                                                table.c.created_at >= db._param(hours[0]),
                                                table.c.created_at < db._param(hours[1])).limit(1)).scalar())
            .values(updated_at=datetime.now(timezone.utc) - timedelta(minutes=30), note="changed"))
        conn.commit()
    assert main(["verify", *window, "--data-point", "messages"]) == 1
    capsys.readouterr()
    monkeypatch.setenv("NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS", "24")
    assert main(["verify", *window, "--data-point", "messages"]) == 0
    out = capsys.readouterr().out
    assert "cold hours (up to" in out and "messages: 1 rows in 1 cold hours wait for the sync's next rewrite" in out
    monkeypatch.delenv("NOTIF_EXPORT_SYNC_COLD_AFTER_HOURS")

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert main(["verify", *window]) == 2
    err = capsys.readouterr().err
    assert "could not read the bucket" in err and aws_env["AWS_SECRET_ACCESS_KEY"] not in err
    db.dispose()


def test_s3_env_finds_the_projects_server_and_never_makes_keys(tmp_path, monkeypatch, capsys):
    import json
    import os

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("NOTIF_EXPORT_HOME", str(home))
    assert main(["s3", "env"]) == 2
    assert "no local S3 server has run with its data in" in capsys.readouterr().err
    assert not home.exists() and not any(elsewhere.iterdir())  # no keys made anywhere

    # A server that runs (this process stands in for it) on the port it was started with.
    (home / "s3").mkdir(parents=True)
    (home / "s3" / "credentials.json").write_text(json.dumps({"access_key": "k1", "secret_key": "s1"}))
    (home / "s3" / "weed.pid").write_text(str(os.getpid()))
    (home / "s3" / "weed.port").write_text("18999")
    assert main(["s3", "env"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "export AWS_ENDPOINT_URL=http://127.0.0.1:18999", "export AWS_REGION=us-east-1",
        "export AWS_ACCESS_KEY_ID=k1", "export AWS_SECRET_ACCESS_KEY=s1"]
    assert main(["s3", "serve"]) == 2  # never a second server on the same data
    assert "a local S3 server already runs on http://127.0.0.1:18999" in capsys.readouterr().err


def exported_messages(tmp_path, monkeypatch, s3, bucket) -> int:
    """Two hours of messages (only) in the bucket; the source's message count."""
    from datetime import timedelta

    from notif_export.dev.simulator import Simulator
    from notif_export.lib.contract import DATA_POINTS
    from notif_export.lib.destination import Destination
    from notif_export.lib.export import rewrite_hour
    from notif_export_tests.conftest import NOW

    url = f"sqlite:///{tmp_path / 'source.db'}"
    monkeypatch.setenv("NOTIF_EXPORT_SOURCE_URL", url)
    monkeypatch.setenv("NOTIF_EXPORT_BUCKET", bucket)
    monkeypatch.setenv("NOTIF_EXPORT_HOME", str(tmp_path / "home"))
    db = SourceDatabase(url)
    db.init_schema()
    Simulator(db, seed=5).history(1.5, NOW)
    for h in (1, 0):
        rewrite_hour(db, s3, Destination(bucket=bucket), DATA_POINTS["messages"], NOW - timedelta(hours=h))
    with db.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(TABLES["messages"])
                             .where(TABLES["messages"].c.created_at >= (NOW - timedelta(hours=1)).replace(
                                 minute=0, second=0, microsecond=0))).scalar_one()
    db.dispose()
    return count


def test_query_types_partition_columns_and_reads_data_points_without_files(aws_env, bucket, s3, tmp_path,
                                                                           monkeypatch, capsys):
    count = exported_messages(tmp_path, monkeypatch, s3, bucket)
    sql = ("select typeof(hour) as hour_type, count(*) as n from messages group by 1; "
           "select (select count(*) from messages) as messages, (select count(*) from requests) as requests")
    assert main(["query", "--csv", sql]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["messages,requests", f"{count},0"]
    assert "requests: no files" in captured.err and "no analytics database" in captured.err
    assert main(["query", "--csv", "select hour_type from (select typeof(hour) as hour_type from messages) limit 1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["hour_type", "BIGINT"]
    assert main(["query", "select nonsense"]) == 1
    assert 'notif-export query: Binder Error: Referenced column "nonsense"' in capsys.readouterr().err


def test_query_prompt_in_a_terminal(aws_env, bucket, s3, tmp_path, monkeypatch):
    import os
    import pty
    import subprocess
    import sys
    import time

    count = exported_messages(tmp_path, monkeypatch, s3, bucket)
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "notif_export.cli", "query"], stdin=terminal, stdout=terminal,
                            stderr=terminal, env=os.environ.copy(), close_fds=True)
    os.close(terminal)
    output = b""

    def read_until(marker: bytes, timeout: float = 60) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output and time.monotonic() < deadline:
            try:
                output += os.read(controller, 4096)
            except OSError:
                break
        assert marker in output, output.decode(errors="replace")

    read_until(b"export> ")
    os.write(controller, b"select count(*) as n\r")
    read_until(b"...> ")
    os.write(controller, b"from messages;\r")
    read_until(str(count).encode())
    os.write(controller, b".tables\r")
    read_until(b"workflow_executions")
    os.write(controller, b".quit\r")
    assert proc.wait(30) == 0
    os.close(controller)
