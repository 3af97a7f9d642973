"""The short versions of the soak and chaos runs (issue 17), so a regression is caught in CI:
one fault of each kind against `outdial run`, then the reconciliation; and a soak long enough
for a few samples. Figures are printed by the benchmarks, never asserted here."""

from __future__ import annotations

import pytest

from bench import chaos, soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


# disk_full mounts a tmpfs (root only); tests/store/test_turns.py fills the spool's disk
# with a file size limit instead.
KINDS = tuple(k for k in chaos.FAULTS if k != "disk_full")


async def test_one_fault_of_each_kind_loses_and_duplicates_nothing() -> None:
    # Leases back after 10 s, PostgreSQL's long stop 3 s (15 spool flush intervals), and a
    # SIGTERM lets live calls finish for 5 s (calls still live then are cut and settled).
    result = await chaos.run(
        rounds=1, gap=3.0, concurrency=2, kinds=KINDS, lease_s=10.0, long_stop_s=3.0, drain_s=5.0
    )
    assert [f["kind"] for f in result["faults"]] == list(KINDS)
    assert result["originates"] > 0 and result["calls_bot_spoke"] > 0
    # Every bot turn the daemon logged as heard on the line was audited against `turns`.
    assert result["bot_turns_logged_on_wire"] > 0
    assert "bot_turns_logged_on_wire_not_stored" in result["lost_detail"]
    # The outbox reconciliation ran over events the CRM was sent, through refusals.
    assert result["outbox"]["events"] > 0 and result["outbox"]["refused"] > 0
    assert {"outbox_events_missing", "outbox_events_undelivered"} <= set(result["lost_detail"])
    assert result["lost_detail"] == dict.fromkeys(result["lost_detail"], 0)
    assert result["duplicated_detail"] == dict.fromkeys(result["duplicated_detail"], 0)
    assert result["final_exit_code"] == 0


async def test_a_short_soak_samples_every_series() -> None:
    result = await soak.run(minutes=0.5, concurrency=2, sample_s=10.0, warmup_min=0.1)
    samples = result["samples"]
    assert len(samples) >= 2
    for key in ("rss_mb", "fds", "threads", "tasks", "spool_rows", "outbox_pending"):
        assert all(s[key] is not None for s in samples), key
    assert result["calls"] > 0
    assert {"rss_growth_pct", "fd_growth", "task_growth"} <= set(result)
