"""The report's window and sums on a small hand-made database (the page itself, on marts dbt
built, is tested in a browser: notif_export_tests/test_report.py)."""

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from notif_export.lib.report import ReportError, read_report

NEWEST = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("""create table delivery_hourly (period_start timestamptz, channel_slug varchar, vendor_slug varchar,
                   triggered int, delivered int, seen int, clicked int, failed int)""")
    con.execute("create table requests (created_at timestamptz, status varchar)")
    con.execute("create table workflow_executions (created_at timestamptz, status varchar)")
    con.execute("create table error_events (error_source varchar, error varchar, severity varchar, occurred_at timestamptz)")
    yield con
    con.close()


def test_the_window_counts_back_from_the_newest_hour_with_messages(con):
    two_days_ago = NEWEST - timedelta(days=2)
    con.executemany("insert into delivery_hourly values (?, ?, ?, ?, ?, ?, ?, ?)", [
        (NEWEST, "email", "ses", 10, 8, 4, 1, 2), (NEWEST - timedelta(hours=1), "email", "ses", 20, 20, 5, 0, 0),
        (NEWEST, "sms", None, 4, 3, 0, 0, 1), (two_days_ago, "email", "ses", 100, 0, 0, 0, 100)])
    con.executemany("insert into requests values (?, ?)", [
        (NEWEST, "completed"), (NEWEST, "failure"), (NEWEST, "partial_failure"), (NEWEST, "completed"),
        (two_days_ago, "failure")])
    con.executemany("insert into workflow_executions values (?, ?)", [(NEWEST, "error"), (NEWEST, "warning")])
    con.executemany("insert into error_events values (?, ?, ?, ?)", [
        ("delivery", "mailbox full", "error", NEWEST), ("delivery", "mailbox full", "error", NEWEST),
        ("request", "quota_exceeded", "error", NEWEST), ("workflow_step", "template", "warning", NEWEST),
        ("delivery", "DND number", "error", two_days_ago)])

    day = read_report(con, days=1)
    assert (day.start, day.end) == (NEWEST + timedelta(hours=1) - timedelta(days=1), NEWEST + timedelta(hours=1))
    assert [(r.channel, r.vendor, r.triggered, r.delivered, r.seen, r.clicked, r.failed) for r in day.funnel] == [
        ("email", "ses", 30, 28, 9, 1, 2), ("sms", "(no vendor)", 4, 3, 0, 0, 1)]
    assert day.total.rates == {"delivered": 31 / 34, "seen": 9 / 31, "clicked": 1 / 9, "failed": 3 / 34}
    assert day.error_rates == {
        "API requests failed (wholly or in part)": [(NEWEST, 0.5)],
        "messages failed (of triggered)": [(NEWEST - timedelta(hours=1), 0.0), (NEWEST, 3 / 14)],
        "workflow steps in error": [(NEWEST, 0.5)]}
    assert day.failures == [("delivery", "mailbox full", 2), ("request", "quota_exceeded", 1)]

    week = read_report(con, days=7)
    assert week.total.triggered == 134 and ("delivery", "DND number", 1) in week.failures


def test_a_database_without_messages_says_what_to_run(con):
    with pytest.raises(ReportError, match="no messages yet: export some hours, then run `notif-export dbt build`"):
        read_report(con, days=7)
