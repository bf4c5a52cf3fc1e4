"""The fault campaign's short version: every kind of fault once, under live traffic, with the
real daemon; then nothing may be lost. `-m fault_campaign` selects it; bench/fault_campaign.py
is the long version."""

import random

import pytest

from notif_export.dev.fault_campaign import FAULT_KINDS, Campaign

SEED = random.randrange(1 << 31)


@pytest.mark.fault_campaign
def test_nothing_is_lost_under_faults(tmp_path, pg_url, s3_server, bucket, capsys):
    with capsys.disabled():
        print(f"\nfault campaign seed {SEED} (replay: bench/fault_campaign.py --seed {SEED})")
    result = Campaign(tmp_path, pg_url, s3_server, bucket, SEED).run(
        fault_seconds=45, settle_timeout=240)
    with capsys.disabled():
        print(result.table())
    assert set(result.faults) == set(FAULT_KINDS)
    assert result.settle_seconds is not None, result.table()
    assert result.drift_rows == 0 and result.incomplete_uploads == 0, result.table()
    assert result.source_rows["requests"] > 0 and result.hours_rewritten > 0
    assert len(result.late_commit_arrivals) == result.faults["late_commit_beyond_overlap"]
