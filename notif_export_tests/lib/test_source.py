import psycopg

from notif_export.lib.source import SourceDatabase


def test_the_exports_reads_run_without_parallel_workers_and_keep_the_urls_options(pg_url):
    # The session the export reads through, as the server sees it.
    source = SourceDatabase(pg_url + "?options=-c%20statement_timeout%3D5min&application_name=exporter")
    with psycopg.connect(source.read_uri()) as conn:
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("max_parallel_workers_per_gather", "statement_timeout", "application_name")}
    source.dispose()
    assert settings == {"max_parallel_workers_per_gather": "0", "statement_timeout": "5min",
                        "application_name": "exporter"}
