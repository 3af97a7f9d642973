"""bench/impatience.py in small: one impatient customer, called with the script's adapt rule
and without it, through the real call path. Behaviour only: the figures are the bench's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.impatience import Lead, run

pytestmark = [pytest.mark.slow, pytest.mark.realtime, pytest.mark.timeout(600)]

# Patience for the first long prompt, not for the two after it.
CUSTOMER = Lead("imp-0", "5550000", impatient=True, budget_s=12.0)


async def test_adapting_keeps_an_impatient_customer_who_hangs_up_otherwise(
    tmp_path: Path,
) -> None:
    result = await run([CUSTOMER], tmp_path)
    [on], [off] = result["calls_on"], result["calls_off"]
    # Without adaptation the long prompts go on and the customer hangs up on them.
    assert off["hung_up"] and off["outcome"] == "customer_hangup", off
    assert not off["apology_said"] and off["short_prompts"] == 0, off
    # With it, the daemon heard the voice rise (from the audio alone), apologised once and
    # went on in short prompts; the customer recognised the apology and stayed on the line:
    # to the end, or handed to the person offered.
    assert on["apology_said"] and on["apology_heard"], on
    assert on["short_prompts"] >= 1 or on["took_offer"], on
    assert not on["hung_up"] and (on["completed"] or on["transferred"]), on
    assert result["hangup_rate_on"] == 0.0 and result["hangup_rate_off"] == 1.0
