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
