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
    from datetime import timedelta

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

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert main(["verify", *window]) == 2
    err = capsys.readouterr().err
    assert "could not read the bucket" in err and aws_env["AWS_SECRET_ACCESS_KEY"] not in err
    db.dispose()
