"""The fault campaign, long form: the real Dagster daemon syncing live traffic from PostgreSQL
(127.0.0.1:5432, a throwaway database) to a local S3 server, both behind fault-injecting
proxies, under seeded random faults for --minutes; then it settles and `verify` judges every
hour touched. Prints the table of faults, figures and drift (which must be 0).

    .venv/bin/python bench/fault_campaign.py --minutes 20 [--seed N]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from notif_export.dev.fault_campaign import Campaign  # noqa: E402
from notif_export.dev.local_s3 import local_s3_server  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20, help="how long faults are injected")
    parser.add_argument("--seed", type=int, default=None, help="replay a campaign (default: a new seed)")
    parser.add_argument("--settle-minutes", type=float, default=15, help="how long it may take to settle")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    name = f"fault_campaign_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    workdir = Path(tempfile.mkdtemp(prefix="fault-campaign-"))
    try:
        with local_s3_server(workdir / "s3", ("fault-campaign",)) as server:
            result = Campaign(workdir, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", server,
                              "fault-campaign", seed).run(args.minutes * 60, args.settle_minutes * 60)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(result.table())
    print(f"(logs in {workdir})")
    return 0 if result.drift_rows == 0 and result.settle_seconds is not None and result.incomplete_uploads == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
