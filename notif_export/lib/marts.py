"""Reading the marts dbt built in the DuckDB analytics database: their summaries and the report's
queries share one read-only connection and one way of dividing counts."""

from __future__ import annotations

from pathlib import Path

import duckdb

# The marts whose rows are delivery funnels (macros/delivery_summary.sql).
DELIVERY_MARTS = frozenset({"delivery_hourly", "delivery_daily"})


def connect(database: Path) -> duckdb.DuckDBPyConnection:
    """Read-only, so a reader never takes the write lock dbt needs; times shown in UTC, as the
    marts' periods are cut."""
    con = duckdb.connect(str(database), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con


def rate(numerator: int | None, denominator: int | None) -> float | None:
    """numerator / denominator, None when there is nothing to divide by (no point on a plot
    rather than a zero that did not happen)."""
    return numerator / denominator if denominator else None


def summary(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, int | float]:
    """What a mart's materialization records for plotting over time: its rows and, for the
    delivery marts, the share of triggered messages delivered and failed and of delivered ones
    seen, over the whole table (the mart's own rates are per row)."""
    relation = f'"{schema}"."{table}"'
    if table not in DELIVERY_MARTS:
        return {"rows": con.execute(f"select count(*) from {relation}").fetchone()[0]}
    rows, triggered, delivered, failed, seen = con.execute(
        f"select count(*), sum(triggered), sum(delivered), sum(failed), sum(seen) from {relation}").fetchone()
    rates = {"delivered_rate": rate(delivered, triggered), "failed_rate": rate(failed, triggered),
             "seen_rate": rate(seen, delivered)}
    return {"rows": rows, **{name: value for name, value in rates.items() if value is not None}}
