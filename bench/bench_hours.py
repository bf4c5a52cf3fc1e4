"""Hours of other sizes, copied in SQL from `export_hour.py`'s benchmark hour (kept between runs).

The copies keep the hour's values and shape; their keys get a suffix so that the source's unique
index holds, and their times move to the copy's hour. Used by `export_hour.py --sizes` (one hour
of a quarter-million, half and a million rows) and `export_hours.py` (72 hours of traffic).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from notif_export.lib.contract import MESSAGES

SHIFTED = {"created_at", "updated_at", "message_triggered_at", "message_delivered_at", "message_seen_at",
           "message_clicked_at"}
SUFFIXED = {"message_id", "recipient_distinct_id"}


def copy_hour(pg_url: str, source_hour: datetime, to_hour: datetime, copies: int = 1, share_of_8: int = 8) -> int:
    """Fill `to_hour` with `copies` copies of `share_of_8` eighths of the source hour's rows,
    unless it holds rows already; returns the rows the hour holds."""
    end = source_hour + timedelta(hours=1)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM messages WHERE created_at >= %s AND created_at < %s",
                            (to_hour, to_hour + timedelta(hours=1))).fetchone()[0]
        if have:
            return have
        shift = to_hour - source_hour
        columns = ", ".join(f'"{c}"' for c in MESSAGES.columns)
        values = ", ".join(
            f'"{c}" + %(shift)s' if c in SHIFTED else f'"{c}" || %(suffix)s || n' if c in SUFFIXED else f'"{c}"'
            for c in MESSAGES.columns
        )
        cur = conn.execute(
            f"INSERT INTO messages ({columns}) SELECT {values} FROM messages, generate_series(1, %(copies)s) AS n "
            "WHERE created_at >= %(start)s AND created_at < %(end)s AND abs(hashtext(message_id)) %% 8 < %(share)s",
            {"shift": shift, "suffix": f"~{to_hour:%m%d%H}~", "copies": copies, "start": source_hour, "end": end,
             "share": share_of_8})
        # The planner's statistics as autovacuum would keep them (it is off on some servers, where
        # the hours copied would otherwise be planned as if they did not exist).
        conn.execute("ANALYZE messages")
        return cur.rowcount
