"""`notif-export report`: the page built from a real analytics database, opened in headless
Chromium (Debian's package, driven by Playwright): the charts render, with the database's
numbers, without errors and without any request leaving the file."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from notif_export.cli import main
from notif_export.dev.simulator import Simulator
from notif_export_tests.conftest import NOW, export_env, materialize

CHROMIUM = Path("/usr/bin/chromium")
STEPS = ("triggered", "delivered", "seen", "clicked")


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"HEADLESS BROWSER TEST SKIPPED: no {CHROMIUM}; install Debian's chromium "
                    "(scripts/setup.sh does as root) to check that the report renders")
    return CHROMIUM


@contextmanager
def browser_page(chromium: Path) -> Iterator:
    """A Playwright page in Debian's Chromium (Playwright cannot download its own browsers here).
    Opened only after the Dagster run: while open, Playwright's sync API holds an asyncio loop on
    this thread, which a Dagster run then trips over (a RuntimeWarning)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium))
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()


def test_report_without_an_analytics_database_says_to_build_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NOTIF_EXPORT_HOME", str(tmp_path))
    assert main(["report"]) == 2
    assert (f"no analytics database at {tmp_path / 'analytics.duckdb'}: build it first with `notif-export dbt build`"
            in capsys.readouterr().err)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("source_url", ["sqlite"], indirect=True)
def test_report_page_renders_the_database_numbers_offline(chromium, source, source_url, bucket, aws_env, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, **export_env(source_url, bucket, aws_env, NOTIF_EXPORT_HOME=str(home))}
    Simulator(source, seed=4).history(3, NOW)
    assert materialize(env, [(NOW - timedelta(hours=3)).replace(minute=0) + timedelta(hours=i) for i in range(4)]).success
    for command in (["dbt", "run"], ["report", "--output", str(tmp_path / "out" / "report.html")]):
        done = subprocess.run([sys.executable, "-m", "notif_export.cli", *command], env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2026-11-13 13:00 to 2026-11-20 13:00 UTC written to" in done.stdout  # 7 days up to the newest hour

    # The numbers, counted from the latest-state messages and the error events.
    with duckdb.connect(str(home / "analytics.duckdb"), read_only=True) as con:
        funnel = con.execute(f"""select channel_slug, vendor_slug, {', '.join(f'count(message_{s}_at)' for s in STEPS)},
                                        count(*) filter (where message_status = 'delivery_failed')
                                 from messages group by all order by 1, 2""").fetchall()
        failures = dict(con.execute("select error_source || ': ' || error, count(*) from error_events "
                                    "where severity = 'error' group by all").fetchall())
        failed_per_hour = [r[0] for r in con.execute(
            "select count(*) filter (where message_status = 'delivery_failed') / count(message_triggered_at) "
            "from messages group by date_trunc('hour', created_at) order by date_trunc('hour', created_at)").fetchall()]

    page_url = (tmp_path / "out" / "report.html").as_uri()
    with browser_page(chromium) as page:
        problems, requests = [], []
        page.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning") else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(page_url)
        for chart in ("funnel", "error_rates", "failures"):
            page.wait_for_selector(f"#{chart} svg.main-svg", timeout=15_000)

        # The funnel: one bar trace per step, each bar labelled with its count, in the table too.
        assert page.locator("#funnel .trace.bars").count() == len(STEPS)
        assert page.locator("#funnel .bartext").all_text_contents() == [
            str(row[2 + i]) for i in range(len(STEPS)) for row in funnel]
        table = [[cell.strip() for cell in row.locator("td").all_text_contents()]
                 for row in page.locator("#funnel-table tbody tr").all()]
        assert [row[:7] for row in table[:-1]] == [[str(v) for v in row] for row in funnel]
        assert table[-1][2:7] == [str(sum(row[i] for row in funnel)) for i in range(2, 7)]

        # Error rates: three series by hour; the messages' one equals failed / triggered per hour.
        series = dict(page.evaluate("Array.from(document.getElementById('error_rates').data, t => [t.name, t.y])"))
        assert len(series) == 3 and all(len(rates) == len(failed_per_hour) for rates in series.values())
        assert series["messages failed (of triggered)"] == pytest.approx(failed_per_hour)

        # The top failure reasons: the ten most frequent errors, each with its count.
        labels = page.evaluate("document.getElementById('failures').data[0].y")
        counts = [int(text) for text in page.locator("#failures .bartext").all_text_contents()]
        assert sorted(page.locator("#failures .ytick text").all_text_contents()) == sorted(labels)
        assert len(labels) == 10 and [failures[label] for label in labels] == counts
        assert counts == sorted(failures.values(), reverse=True)[:10]

        assert problems == []
        assert requests == [page_url]  # plotly.js is inline: nothing is fetched
