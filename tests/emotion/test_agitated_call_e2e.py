"""End to end: a caller who turns agitated is handed to an agent with the call's context.

pbxsim plays Asterisk and two customers; real Vosk, Piper, spaCy, librosa and PostgreSQL do the
rest. Both customers answer a five-question survey (tests/fixtures/scripts/
agitation_survey_en.yaml) with the same calm takes of 아니요 ("no", mapped to the English
script's "no" by phrase_map); the first three answers form each caller's baseline. From the
fourth answer on, one customer stays calm and the other speaks the same takes agitated
(pbxsim raises pitch, loudness and tempo), so the agitation is the only difference between
the two calls.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from dialog import load_script
from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from pbxsim.records import CallRecord
from tests.agi.conftest import AUDIO, LiveStack, open_live_stack, originate
from voice.asr import AsrEngine
from voice.settings import AsrSettings, TtsSettings
from voice.tts import TtsEngine

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "scripts" / "agitation_survey_en.yaml"
CAMPAIGN = "agitation-e2e"
REASON = "customer agitated"
# One calm speaker's five takes of 아니요 (tests/fixtures/audio/make_calm_takes.sh).
TAKES = [str(AUDIO / f"ko_no_take_{n}.wav") for n in range(1, 6)]
BASELINE = 3  # EmotionSettings().baseline_utterances: the answers every call starts with
# The pbxsim README's angry caller: +3 semitones, +6 dB, 20 % faster.
AGITATED = {"pitch_semitones": 3, "gain_db": 6, "tempo": 1.2}


def _answers(agitated: bool) -> list[dict[str, Any]]:
    """Five answers, each after the bot's question; from the fourth on agitated or not."""
    steps: list[dict[str, Any]] = []
    for n, take in enumerate(TAKES):
        say: dict[str, Any] = {"say": take}
        if agitated and n >= BASELINE:
            say["agitation"] = AGITATED
        steps += [{"wait_for_bot": True}, say]
    # Stay on the line: the bot, not the customer, ends each call.
    return [*steps, {"silence": 20}]


CUSTOMERS = {"calm": _answers(agitated=False), "agitated": _answers(agitated=True)}


def _scenario() -> Scenario:
    numbers = {
        f"555100{i}": {"customer": name, "outcome": "answer"} for i, name in enumerate(CUSTOMERS)
    }
    customers = {name: {"steps": steps} for name, steps in CUSTOMERS.items()}
    return Scenario.model_validate(
        {"seed": 3, "outcomes": {"answer": 1.0}, "numbers": numbers, "customers": customers}
    )


def _transfer_threshold() -> float:
    """The score at which the script's `on_emotion` rule hands the call over."""
    rules = load_script(SCRIPT).script.on_emotion
    (rule,) = [r for r in rules if r.action == "transfer"]
    return rule.above


@pytest.fixture(scope="session")
async def survey_engines(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[AsrEngine, TtsEngine]:
    # Both engines keep their models in process-wide caches: loading here costs no second copy.
    asr = await AsrEngine.load(AsrSettings())
    tts = await TtsEngine.load(TtsSettings(cache_dir=tmp_path_factory.mktemp("tts")))
    return asr, tts


@pytest.fixture
async def survey_stack(
    survey_engines: tuple[AsrEngine, TtsEngine], pg_url: str, tmp_path: Path
) -> AsyncIterator[LiveStack]:
    """The live call stack of tests/agi/conftest.py, serving only the survey script."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(SCRIPT, scripts)
    async with open_live_stack(survey_engines, pg_url, scripts, tmp_path) as stack:
        assert stack.catalog.names == ["agitation_survey_en"], stack.catalog.errors
        yield stack


async def _add_call(pool: asyncpg.Pool, call_id: str, phone: str) -> None:
    """A survey lead with an attempt row, as the dialer leaves it before Originate."""
    async with pool.acquire() as conn:
        campaign = await conn.fetchval(
            """INSERT INTO campaigns (name, script_name) VALUES ($1, 'agitation_survey_en')
               ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id""",
            CAMPAIGN,
        )
        lead = await conn.fetchval(
            """INSERT INTO leads (campaign_id, phone_e164, timezone, fields)
               VALUES ($1, $2, 'America/New_York', '{}') RETURNING id""",
            campaign,
            phone,
        )
        await conn.execute(
            """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner)
               VALUES ($1, $2, $3, 'sim', 'test')""",
            call_id,
            lead,
            campaign,
        )


async def _run_calls(stack: LiveStack) -> dict[str, CallRecord]:
    dialplan = default_dialplan(f"agi://127.0.0.1:{stack.service.agi_port}/outdial")
    calls = []
    for i, name in enumerate(CUSTOMERS):
        await _add_call(stack.pool, f"call-{name}", f"+1202555100{i}")
        calls.append((f"555100{i}", f"call-{name}"))
    async with PbxSim(SimConfig(scenario=_scenario(), dialplan=dialplan)) as sim:
        await originate(sim.ami_port, calls)
        records = await sim.wait_calls_done(len(calls), timeout=150)
    return {r.call_id: r for r in records if r.call_id is not None}


class _Metrics:
    """The process-wide Prometheus samples this test moves (read as deltas)."""

    def __init__(self, threshold: float) -> None:
        self.scores = self._sample("outdial_agitation_score_count", {})
        # The histogram has a bucket edge at the script's threshold: scores at or below it.
        self.calm_scores = self._sample("outdial_agitation_score_bucket", {"le": str(threshold)})
        self.transfers = self._sample(
            "outdial_transfers_total", {"campaign": CAMPAIGN, "reason": REASON}
        )

    @staticmethod
    def _sample(name: str, labels: dict[str, str]) -> float:
        value = REGISTRY.get_sample_value(name, labels)
        if value is None and name.endswith("_bucket"):
            raise AssertionError(f"no sample {name}{labels}: is the bucket edge still there?")
        return value or 0.0


async def _customer_turns(stack: LiveStack, call_id: str) -> list[dict[str, Any]]:
    rows = await stack.pool.fetch(
        "SELECT * FROM turns WHERE call_id = $1 AND speaker = 'customer' ORDER BY seq", call_id
    )
    return [dict(r) for r in rows]


async def test_agitated_caller_is_transferred_with_context(survey_stack: LiveStack) -> None:
    threshold = _transfer_threshold()
    before = _Metrics(threshold)
    records = await _run_calls(survey_stack)
    await survey_stack.turns.close()
    after = _Metrics(threshold)
    rows = await survey_stack.pool.fetch("SELECT * FROM calls")
    calls = {r["call_id"]: dict(r) for r in rows}
    calm_turns = await _customer_turns(survey_stack, "call-calm")
    agitated_turns = await _customer_turns(survey_stack, "call-agitated")

    # The calm caller answers all five questions and is never handed over.
    calm = calls["call-calm"]
    assert (calm["disposition"], calm["outcome"], calm["transfer_reason"]) == (
        "completed",
        "surveyed",
        None,
    )
    assert records["call-calm"].transfer is None
    assert "OUTDIAL_TRANSFER_REASON" not in records["call-calm"].variables
    assert [t["intent"] for t in calm_turns] == ["deny"] * 5
    calm_scores = [t["agitation"] for t in calm_turns]
    assert all(score is not None and score < threshold for score in calm_scores), calm_scores

    # The agitated caller is handed over at the first agitated answer (question four).
    agitated = calls["call-agitated"]
    assert agitated["disposition"] == "transferred"
    assert (agitated["transfer_reason"], agitated["transfer_target"]) == (REASON, "agent-queue")
    assert [t["node"] for t in agitated_turns] == ["q1", "q2", "q3", "q4"]
    scores = [t["agitation"] for t in agitated_turns]
    baseline, last = scores[:BASELINE], scores[BASELINE]
    # Same takes, same baseline: the first answers score as the calm caller's did.
    assert baseline == pytest.approx(calm_scores[:BASELINE], abs=0.05)
    assert all(score < threshold for score in baseline), scores
    assert last >= threshold and last > max(baseline), scores
    # Higher and louder than this caller's own baseline is what raised the score.
    z = agitated_turns[-1]["emotion"]
    assert z["f0_median"] > 1 and z["energy_median"] > 1, z

    record = records["call-agitated"]
    assert record.transfer is not None
    assert (record.transfer.application, record.transfer.target) == ("Goto", "agent-queue,s,1")
    variables = record.variables
    assert variables["OUTDIAL_TRANSFER_REASON"] == REASON
    assert variables["OUTDIAL_LAST_INTENT"] == "deny"
    assert float(variables["OUTDIAL_AGITATION"]) == pytest.approx(last, abs=0.005)
    summary = variables["OUTDIAL_SUMMARY"]
    assert f"reason: {REASON}" in summary and "agitation_survey_en" in summary
    assert agitated["summary"].startswith(summary)

    # Metrics: one score per customer answer (only the last agitated one above the
    # threshold) and one transfer for this campaign and reason.
    assert after.scores - before.scores == len(calm_turns) + len(agitated_turns)
    assert after.scores - after.calm_scores - (before.scores - before.calm_scores) == 1
    assert after.transfers - before.transfers == 1
