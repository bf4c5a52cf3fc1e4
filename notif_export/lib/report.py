"""The analysts' report: one HTML page from the analytics database (the marts dbt built), with the
delivery funnel by channel and vendor, error rates by hour and the top failure reasons.

The page is self-contained: plotly.js and the data are inline, so it opens from a file or a mail
attachment with no network. Plotly draws interactive charts (hover for exact counts and rates,
zoom into hours, legend toggles) from plain data in Python; its one script is about 4.8 MB,
written once per page whatever the number of charts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import jinja2
import markupsafe
import plotly.graph_objects as go
import plotly.offline

from notif_export.lib import marts
from notif_export.lib.analytics import analytics_lock
from notif_export.lib.settings import Settings

FUNNEL_STEPS = ("triggered", "delivered", "seen", "clicked")
TOP_FAILURES = 10

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)


class ReportError(RuntimeError):
    """The report cannot be made (no analytics database, or not built yet); the message says what to do."""


@dataclass(frozen=True)
class FunnelRow:
    channel: str
    vendor: str
    triggered: int
    delivered: int
    seen: int
    clicked: int
    failed: int

    @property
    def rates(self) -> dict[str, float | None]:
        """Each step over the previous one, and failures over triggered, as the delivery marts
        compute them."""
        return {"delivered": marts.rate(self.delivered, self.triggered), "seen": marts.rate(self.seen, self.delivered),
                "clicked": marts.rate(self.clicked, self.seen), "failed": marts.rate(self.failed, self.triggered)}


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    funnel: list[FunnelRow]
    error_rates: dict[str, list[tuple[datetime, float | None]]]  # series -> (hour, rate)
    failures: list[tuple[str, str, int]]  # (where, reason, events)

    @property
    def total(self) -> FunnelRow:
        return FunnelRow("all channels", "", *(sum(getattr(r, step) for r in self.funnel)
                                               for step in (*FUNNEL_STEPS, "failed")))


def read_report(con: duckdb.DuckDBPyConnection, days: int) -> Report:
    """The report's numbers over the `days` days up to the newest hour with messages (not up to
    now, so a database built a while ago still shows its data)."""
    newest = con.execute("select max(period_start) from delivery_hourly").fetchone()[0]
    if newest is None:
        raise ReportError("the analytics database has no messages yet: export some hours, then run "
                          "`notif-export dbt build`")
    end = newest + timedelta(hours=1)
    start = end - timedelta(days=days)
    funnel = [FunnelRow(*row) for row in con.execute(f"""
        select channel_slug, coalesce(vendor_slug, '(no vendor)'),
               {', '.join(f'sum({column})::bigint' for column in (*FUNNEL_STEPS, 'failed'))}
        from delivery_hourly where period_start >= $start
        group by all order by 1, 2""", {"start": start}).fetchall()]
    # Each rate is over the rows created in the hour, as the files and the marts cut them.
    error_rates: dict[str, list] = {}
    for series, hour, failed, total in con.execute("""
        select 'API requests failed (wholly or in part)' as series, date_trunc('hour', created_at) as hour,
               count(*) filter (where status <> 'completed') as failed, count(*) as total
        from requests where created_at >= $start group by all
        union all
        select 'workflow steps in error', date_trunc('hour', created_at), count(*) filter (where status = 'error'),
               count(*)
        from workflow_executions where created_at >= $start group by all
        union all
        select 'messages failed (of triggered)', period_start, sum(failed), sum(triggered)
        from delivery_hourly where period_start >= $start group by all
        order by series, hour""", {"start": start}).fetchall():
        error_rates.setdefault(series, []).append((hour, marts.rate(failed, total)))
    failures = con.execute("""
        select error_source, error, count(*) as events from error_events
        where severity = 'error' and occurred_at >= $start
        group by all order by events desc, error_source, error limit $top""",
                           {"start": start, "top": TOP_FAILURES}).fetchall()
    return Report(start, end, funnel, error_rates, failures)


def funnel_figure(report: Report) -> go.Figure:
    labels = [f"{row.channel} · {row.vendor}" for row in report.funnel]
    figure = go.Figure()
    for step in FUNNEL_STEPS:
        figure.add_bar(
            name=step, orientation="h", y=labels, x=[getattr(row, step) for row in report.funnel],
            text=[getattr(row, step) for row in report.funnel], textposition="outside", cliponaxis=False,
            customdata=[_percent(row.rates.get(step)) for row in report.funnel],
            hovertemplate=f"%{{y}}<br>{step}: %{{x}}" + ("" if step == "triggered" else " (%{customdata} of the previous step)")
            + "<extra></extra>",
        )
    figure.update_layout(barmode="group", height=160 + 72 * len(labels), yaxis={"autorange": "reversed"},
                         xaxis_title="messages", legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
                         margin={"l": 10, "r": 40, "t": 40, "b": 40})
    return figure


def error_rates_figure(report: Report) -> go.Figure:
    figure = go.Figure()
    for series, points in report.error_rates.items():
        figure.add_scatter(name=series, mode="lines+markers", x=[hour for hour, _ in points],
                           y=[rate for _, rate in points], hovertemplate="%{x|%Y-%m-%d %H:00} UTC: %{y:.2%}")
    figure.update_layout(height=420, yaxis={"tickformat": ".1%", "rangemode": "tozero", "title": "share in error"},
                         xaxis_title="hour created (UTC)", legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
                         margin={"l": 10, "r": 10, "t": 40, "b": 40})
    return figure


def failures_figure(report: Report) -> go.Figure:
    figure = go.Figure(go.Bar(
        orientation="h", y=[f"{where}: {reason}" for where, reason, _ in report.failures],
        x=[events for *_, events in report.failures], text=[events for *_, events in report.failures],
        textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x} events<extra></extra>",
    ))
    figure.update_layout(height=120 + 36 * len(report.failures), yaxis={"autorange": "reversed"},
                         xaxis_title="events", margin={"l": 10, "r": 40, "t": 10, "b": 40})
    return figure


def render(report: Report, database: Path, generated_at: datetime) -> str:
    charts = {name: figure.to_html(full_html=False, include_plotlyjs=False, div_id=name,
                                   config={"displaylogo": False, "responsive": True})
              for name, figure in (("funnel", funnel_figure(report)), ("error_rates", error_rates_figure(report)),
                                   ("failures", failures_figure(report)))}
    return _TEMPLATES.get_template("report.html.j2").render(
        report=report, database=database, generated_at=generated_at, steps=FUNNEL_STEPS, percent=_percent,
        charts={name: markupsafe.Markup(html) for name, html in charts.items()},
        plotly_js=markupsafe.Markup(plotly.offline.get_plotlyjs()),
    )


def write_report(config: Settings, output: Path, days: int) -> Report:
    """Reads the analytics database and writes the page to `output`; returns what it shows."""
    if days < 1:
        raise ReportError(f"the report covers at least one day, not {days}")
    database = config.duckdb_path
    if not database.exists():
        build = "notif-export dbt build"
        if config.dbt.target != "duckdb":  # the models are in the warehouse; the report reads DuckDB's
            build = f"NOTIF_EXPORT_DBT_TARGET=duckdb {build}"
        raise ReportError(f"no analytics database at {database}: build it first with `{build}`")
    try:
        with analytics_lock(database, shared=True), marts.connect(database) as con:  # waits for a build
            report = read_report(con, days)
    except duckdb.CatalogException as exc:
        raise ReportError(f"{database} lacks the marts ({exc}): build them with `notif-export dbt build`") from None
    except duckdb.Error as exc:
        raise ReportError(f"could not read {database}: {exc}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(report, database, datetime.now(UTC)), encoding="utf-8")
    return report


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.1%}"
