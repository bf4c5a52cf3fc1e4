"""DuckDB over the export, for `notif-export query` and analysts' Python: the bucket's files as
views and the analytics database attached, with the export's own settings (bucket, prefix,
layout, endpoint, credentials) and httpfs from the pinned package."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from notif_export.lib.analytics import analytics_lock
from notif_export.lib.contract import DATA_POINTS, PARTITION_COLUMNS, DataPoint
from notif_export.lib.destination import Destination
from notif_export.lib.duckdb_s3 import HIVE_TYPES, connect_to_bucket
from notif_export.lib.settings import Settings

ANALYTICS_ALIAS = "analytics"  # dbt-duckdb names the database after its file: views inside refer to it so


def read_files_sql(destination: Destination, dp: DataPoint) -> str:
    """`read_parquet` over one data point's files, the partition columns typed explicitly."""
    return (f"read_parquet('{destination.files_glob(dp.name)}', hive_partitioning = true, "
            f"hive_types = {HIVE_TYPES}, union_by_name = true)")


def create_file_views(con: duckdb.DuckDBPyConnection, destination: Destination) -> dict[str, int]:
    """One view per data point over its files (each row in its latest exported state); a data
    point without files yet is an empty view of the contract's columns. Returns the file counts."""
    counts = {}
    for name, dp in DATA_POINTS.items():
        counts[name] = con.execute("SELECT count(*) FROM glob(?)", [destination.files_glob(name)]).fetchone()[0]
        if counts[name]:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {read_files_sql(destination, dp)}")
        else:
            empty = dp.schema.empty_table()
            for column in PARTITION_COLUMNS:
                empty = empty.append_column(column, pa.array([], pa.int64()))
            con.from_arrow(empty).create_view(f"_{name}_no_files")
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _{name}_no_files")
    return counts


@contextmanager
def analytics_attached(con: duckdb.DuckDBPyConnection, settings: Settings,
                       note: Callable[[str], object] = lambda message: None) -> Iterator[None]:
    """The analytics database attached read-only as `analytics` for the block, between builds
    (DuckDB lets no other process read a file being written); `note` hears why it is not."""
    path = settings.duckdb_path
    if not path.exists():
        note(f"no analytics database at {path} yet: build it with `notif-export dbt build`")
        yield
        return
    with analytics_lock(path, shared=True, waiting=lambda: note("waiting for the analytics build to finish ...")):
        con.execute(f"ATTACH '{path}' AS {ANALYTICS_ALIAS} (READ_ONLY)")
        try:
            yield
        finally:
            con.execute(f"DETACH {ANALYTICS_ALIAS}")


def export_connection(settings: Settings | None = None, analytics: bool = True,
                      note: Callable[[str], object] = lambda message: None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views `messages`, `requests`, `workflow_executions` over the
    bucket's files and (with `analytics`) the analytics database attached as `analytics` for as
    long as it is open: close it when done, a build cannot write the database meanwhile. `note`
    hears what the connection lacks and why."""
    settings = settings or Settings.from_env(os.environ)
    con = duckdb.connect()
    connect_to_bucket(con, settings.bucket_access)
    for name, files in create_file_views(con, settings.destination).items():
        if not files:
            note(f"{name}: no files in s3://{settings.destination.bucket}/{settings.destination.prefix} yet "
                 "(an empty view)")
    if analytics and settings.duckdb_path.exists():
        with analytics_lock(settings.duckdb_path, shared=True):
            con.execute(f"ATTACH '{settings.duckdb_path}' AS {ANALYTICS_ALIAS} (READ_ONLY)")
    return con


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, csv_output: bool = False, max_rows: int = 100) -> None:
    """Run one or more statements; print the last one's result (a table, or CSV for scripts)."""
    if not sql.strip():
        return
    result = con.sql(sql)
    if result is None:  # a statement without rows (SET, CREATE, ...)
        return
    if csv_output:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.fetchall())
    else:
        result.show(max_rows=max_rows)


def interactive_shell(con: duckdb.DuckDBPyConnection, settings: Settings, max_rows: int = 100) -> None:
    """A small SQL prompt: statements end with ';', `.tables` lists what there is, `.quit` or
    Ctrl-D leaves, Ctrl-C drops the statement being typed. The analytics database is attached
    for each statement only, so a long session never holds up a build."""
    import readline  # noqa: F401  (line editing and history for input())

    print("DuckDB over the export: views messages, requests, workflow_executions over the bucket's files; "
          f"the dbt models as {ANALYTICS_ALIAS}.<model> once built.\n"
          "End each statement with ';'. .tables lists them, .quit (or Ctrl-D) leaves.")
    lines: list[str] = []
    while True:
        try:
            line = input("     ...> " if lines else "export> ")
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print()
            lines = []
            continue
        command = line.strip()
        if not lines and command in (".quit", ".exit"):
            return
        if not lines and command == ".tables":
            line = ("SELECT database_name AS database, table_name AS name FROM duckdb_tables() "
                    "UNION ALL SELECT database_name, view_name FROM duckdb_views() WHERE NOT internal "
                    "AND view_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY ALL;")
        lines.append(line)
        if not line.rstrip().endswith(";"):
            continue
        try:
            with analytics_attached(con, settings):
                run_sql(con, "\n".join(lines), max_rows=max_rows)
        except duckdb.Error as exc:
            print(f"error: {exc}")
        lines = []
