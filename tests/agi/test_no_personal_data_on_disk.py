"""A call whose greeting says the customer's name and amount leaves nothing of them on disk.

The call runs through pbxsim with real Vosk, Piper, spaCy and PostgreSQL, with the daemon's
logging at DEBUG into the state directory and the turn log spooling to disk (its database is
unreachable), so every place a call writes outside PostgreSQL is exercised: the prompt cache
(its files and their names, the cache keys), the NLU cache, the spool (encrypted) and the
log. Then the whole state directory is searched for the name, the number and the amount.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from agi.runtime import cacheable_texts
from outdial.config import LogSettings
from outdial.credentials import spool_keys
from outdial.logging import setup_logging
from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from store.db import create_pool
from store.settings import DatabaseSettings
from store.spool import Spool, spool_cipher
from store.turns import TurnWriter
from tests.agi.conftest import YES, open_live_stack, originate
from voice.asr import AsrEngine
from voice.settings import TtsSettings
from voice.tts import TtsEngine

pytestmark = pytest.mark.slow

NAME, AMOUNT, NUMBER = "Maximilian Oberholzer", "1,234.56", "+12025550147"
SCRIPT = """\
schema_version: 1
name: balance_en
language: en
success_outcomes: [promised]
variables:
  customer_name: {required: true}
  amount: {required: true}
  company: {default: Northwind Energy}
identification:
  who: >-
    Hi {customer_name}, this is {company} about your balance of {amount} dollars.
    This call may be recorded.
  opt_out: Say stop calling and we will not call again.
start: ask
nodes:
  ask:
    kind: listen
    prompt: Can you pay {amount} dollars by Friday, {customer_name}?
    intents: {affirm: promised, deny: declined}
    expect:
      affirm: ["yes"]
      deny: ["no"]
    no_input: {max_retries: 1, then: declined}
    no_match: {max_retries: 1, then: declined}
  promised:
    kind: end
    say: Thank you, {customer_name}. Goodbye.
    disposition: completed
    outcome: promised
  declined:
    kind: end
    say: We will write to you. Goodbye.
    disposition: completed
    outcome: declined
"""
UNREACHABLE = "postgresql://outdial@127.0.0.1:9/outdial?connect_timeout=1"


@contextlib.contextmanager
def daemon_log(path: Path) -> Iterator[None]:
    """The daemon's logging (masking filter and all) at DEBUG into `path`."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    with path.open("w", encoding="utf-8") as out:
        setup_logging(LogSettings(level="DEBUG"), stream=out)
        try:
            yield
        finally:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in saved[0]:
                root.addHandler(handler)
            root.setLevel(saved[1])


def _forms() -> dict[str, list[bytes]]:
    """Each secret as it could be written: the number in every common spelling."""
    digits = NUMBER.lstrip("+")
    spellings = [NUMBER, digits, digits[1:], "202-555-0147", "(202) 555-0147", "555-0147"]
    return {
        "name": [NAME.encode(), b"Oberholzer", NAME.encode("utf-16-le")],
        "amount": [AMOUNT.encode(), b"1234.56"],
        "number": [s.encode() for s in spellings],
    }


def _found_on_disk(state: Path) -> list[str]:
    found = []
    forms = _forms()
    for path in sorted(p for p in state.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for what, spellings in forms.items():
            for spelling in spellings:
                if spelling in data or spelling in str(path).encode():
                    found.append(f"{what} in {path.relative_to(state)}")
    return found


async def test_a_greeting_with_lead_data_leaves_nothing_on_disk(
    engines: tuple[AsrEngine, object], pg_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    scripts = tmp_path / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "balance_en.yaml").write_text(SCRIPT, encoding="utf-8")
    asr = engines[0]
    tts = await TtsEngine.load(TtsSettings(cache_dir=state / "tts-cache"))
    pool = await create_pool(pg_url, DatabaseSettings())
    async with pool.acquire() as conn:
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, script_name) VALUES ('dues', 'balance_en') RETURNING id"
        )
        lead = await conn.fetchval(
            """INSERT INTO leads (campaign_id, phone_e164, timezone, fields)
               VALUES ($1, $2, 'America/New_York', $3) RETURNING id""",
            campaign,
            NUMBER,
            {"customer_name": NAME, "amount": AMOUNT},
        )
        await conn.execute(
            """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner)
               VALUES ('call-dues', $1, $2, 'sim', 'test')""",
            lead,
            campaign,
        )
    log_file = state / "outdial.log"
    cipher = spool_cipher(spool_keys(state))  # as the daemon makes it
    # Nothing listens at UNREACHABLE: every turn goes to the spool, as in a database outage.
    turns = TurnWriter(UNREACHABLE, state / "spool" / "turns", write_timeout=1.0, cipher=cipher)
    with daemon_log(log_file):
        async with open_live_stack((asr, tts), pg_url, scripts, state, turns) as stack:
            scenario = Scenario.model_validate(
                {
                    "seed": 1,
                    "outcomes": {"answer": 1.0},
                    "numbers": {"2025550147": {"customer": "payer", "outcome": "answer"}},
                    "customers": {
                        "payer": {"steps": [{"wait_for_bot": True}, {"say": YES}, {"silence": 20}]}
                    },
                }
            )
            agi = f"agi://127.0.0.1:{stack.service.agi_port}/outdial?campaign=dues"
            config = SimConfig(scenario=scenario, dialplan=default_dialplan(agi),
                               bot_silence_gap=1.0)  # fmt: skip
            async with PbxSim(config) as sim:
                await originate(sim.ami_port, [("2025550147", "call-dues")])
                await sim.wait_calls_done(1, timeout=120)
            await stack.service.drain(5)
            spooled = turns.spool_depth
            runtime = stack.catalog.get("balance_en")
        tts.shutdown()
    call = await pool.fetchrow("SELECT outcome FROM calls WHERE call_id = 'call-dues'")
    await pool.close()

    # The call went through, and its turns (with the greeting's text) wait in the spool.
    assert call["outcome"] == "promised"
    assert spooled >= 3
    assert log_file.stat().st_size > 0
    greeting = f"Hi {NAME}, this is Northwind Energy about your balance of {AMOUNT} dollars."
    assert not tts.is_cached(greeting) and not tts.is_cached(f"Hi {NAME},")
    # Every file in the prompt cache is one of the script's lead-free texts.
    assert runtime is not None
    texts = cacheable_texts(runtime.script)
    assert "This call may be recorded." in texts and not [t for t in texts if NAME in t]
    allowed = {tts.cache_path(t).name for t in texts}
    cached = {p.name for p in (state / "tts-cache").iterdir()}
    assert cached and cached <= allowed
    assert _found_on_disk(state) == []
    # ... though the spool does hold the turns, the greeting with the name among them.
    spool = Spool(state / "spool" / "turns", "turns", cipher=cipher)
    spool.open()
    texts = [r["text"] for seg in spool.sealed_segments() for r in spool.read(seg)]
    spool.close()
    assert any(NAME in t and AMOUNT in t for t in texts)


def test_the_search_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The scan is not blind: each secret in each spelling is found where it was written."""
    for what, spellings in _forms().items():
        for i, spelling in enumerate(spellings):
            (tmp_path / f"{what}-{i}.bin").write_bytes(b"x" + spelling + b"y")
    found = _found_on_disk(tmp_path)
    assert len(found) >= sum(len(s) for s in _forms().values())
