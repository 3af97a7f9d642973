"""Does adapting to impatience keep customers on the line? One campaign, run twice through
the real call path (pbxsim's AMI/FastAGI/AudioSocket, Vosk, the NLU, the agitation tracker,
the dialog engine, Piper, PostgreSQL): with the script's `on_emotion` adapt rule, and without
it (the transfer at high agitation stays in both).

The customers are pbxsim's impatient ones (pbxsim/impatient.py), each with its own patience
budget, and calm ones who answer the same way and never hang up. Impatient customers grow
audibly agitated with every long prompt, and hang up when their patience is spent; the daemon
hears only their audio. Prints the hang-up and completion rates with adaptation on and off;
`--json` prints them as one JSON object on the last line.

    .venv/bin/python bench/impatience.py --impatient 8 --calm 4
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as bench/impatience.py

from agi.catalog import ScriptCatalog  # noqa: E402
from bench.calls import PHRASE_MAP, _clip  # noqa: E402
from dialer.campaigns import CampaignSettings, create_campaign  # noqa: E402
from dialog import load_script  # noqa: E402
from outdial.config import Config  # noqa: E402
from outdial.voicetest import AMI_SECRET, _call_stack, _originate  # noqa: E402
from pbxsim import PbxSim, Scenario, SimConfig  # noqa: E402
from pbxsim.dialplan import default_dialplan  # noqa: E402
from pbxsim.impatient import PATIENCE  # noqa: E402
from pbxsim.records import CallRecord  # noqa: E402
from store.rehearsals import add_rehearsal_call, rehearsed_call  # noqa: E402

SCRIPT_NAME = "impatience"
ADAPT_ABOVE = 0.5
TRANSFER_ABOVE = 0.9
APOLOGY = "Sorry, I'll keep this short."
OFFER = "Or press the pound key to talk to a person."
PACE = 1.1  # the adapted call's slower voice
# Patience budgets of the impatient customers, in seconds of talk beyond 5 s per bot turn:
# spread so that some give up whatever the bot does and some never do.
BUDGETS_S = (6.0, 10.0, 14.0, 18.0, 22.0, 26.0, 30.0, 34.0)
CONCURRENCY = 3
THINK_S = 0.4  # pbxsim.impatient's default pause before an answer
# A pause this long ends the bot's turn for the customer: longer than a gap between two
# sentences a loaded box streams late, so customers answer questions, not pauses.
BOT_PAUSE_S = 1.5
CALL_LIMIT_S = 240.0
# Each customer answers "아니요" (no; every question takes either answer) in the takes of one
# calm speaker (tests/fixtures/audio, make_calm_takes.sh): three calm answers form their
# baseline, then the rest. `--takes 1` says every answer with one recording; `--takes N` cycles
# N takes, which differ in pitch, level and length as one person's answers do, so the baseline
# has a spread and a rise must stand out of it. (Takes of two espeak voices, "ko" and "ko+f3",
# are two people an octave apart: the tracker rightly takes each switch for another speaker
# and starts a new baseline.)
TAKES = tuple(f"ko_no_take_{n}" for n in range(1, 6))
ANSWERS_PER_CALL = 9


def script(adapt: bool) -> dict[str, Any]:
    """A plan-review call: three short questions, then three long ones with short forms, one
    behind an optional sales pitch."""

    def listen(prompt: str, short: str | None, then: str) -> dict[str, Any]:
        node: dict[str, Any] = {
            "kind": "listen",
            "prompt": prompt,
            "intents": {"affirm": then, "deny": then},
            "expect": {"affirm": ["yes"], "deny": ["no"]},
            "no_input": {"max_retries": 1, "then": then},
            "no_match": {"max_retries": 0, "then": then},
            "timeout_ms": 6000,
        }
        return node | ({"short": short} if short else {})

    rules: list[dict[str, Any]] = [
        {"above": TRANSFER_ABOVE, "action": "transfer", "target": "retention"}
    ]
    if adapt:
        rules.insert(
            0,
            {
                "above": ADAPT_ABOVE,
                "action": "adapt",
                "adapt": {
                    "slower": PACE,
                    "apologise": APOLOGY,
                    "offer_person": {"say": OFFER, "target": "retention", "dtmf": "#"},
                    "skip_optional": True,
                },
            },
        )
    return {
        "schema_version": 1,
        "name": SCRIPT_NAME,
        "language": "en",
        "success_outcomes": ["reviewed"],
        "variables": {"customer_name": {"required": True}},
        "identification": {
            "who": "Hi, this is the automated assistant of Northwind Energy.",
            "opt_out": "Say stop calling for no more calls.",
        },
        "start": "is_it_you",
        "nodes": {
            "is_it_you": listen("Is this {customer_name}?", None, "have_a_minute"),
            "have_a_minute": listen("Do you have a minute?", None, "ready"),
            "ready": listen("Shall we start?", None, "fixed_rate"),
            "fixed_rate": listen(
                "Your plan has a fixed rate until the end of the year, and then moves to our "
                "standard variable rate. Would you like to stay on a fixed rate?",
                "Stay on a fixed rate?",
                "pitch",
            ),
            "pitch": {
                "kind": "say",
                "text": "By the way, customers who pay by direct debit get a discount of five "
                "percent on every bill, and can change the date of payment at any time in the "
                "app or on our website.",
                "optional": True,
                "next": "smart_meter",
            },
            "smart_meter": listen(
                "Next, your meter. A smart meter sends its readings to us automatically, so "
                "you never need to read the meter yourself, and your bills are always based on "
                "what you really used rather than on an estimate. Shall we book a free visit "
                "to fit one?",
                "Book a free smart meter?",
                "paperless",
            ),
            "paperless": listen(
                "Last question. We can send your bills by email instead of by post, which "
                "saves paper and reaches you faster, and you can still ask for a paper copy of "
                "any bill whenever you need one. Would you like to switch to paperless bills?",
                "Paperless bills?",
                "done",
            ),
            "done": {
                "kind": "end",
                "say": "Thank you, that's all. Goodbye.",
                "disposition": "completed",
                "outcome": "reviewed",
            },
        },
        "on_emotion": rules,
    }


@dataclass(frozen=True)
class Lead:
    call_id: str
    number: str
    impatient: bool
    budget_s: float | None


def campaign(impatient: int, calm: int) -> list[Lead]:
    leads = [
        Lead(f"imp-{i}", f"555{i:04d}", True, BUDGETS_S[i % len(BUDGETS_S)])
        for i in range(impatient)
    ]
    leads += [Lead(f"calm-{i}", f"556{i:04d}", False, None) for i in range(calm)]
    return leads


def scenario(leads: list[Lead], work: Path, phrases: tuple[Path, Path], takes: int) -> Scenario:
    """Each lead as a customer in both runs (numbers ending 1: adaptation on, 0: off)."""
    apology, offer = phrases
    answers = [_clip(work, TAKES[i % takes]) for i in range(ANSWERS_PER_CALL)]
    customers: dict[str, Any] = {}
    numbers: dict[str, Any] = {}
    for lead in leads:
        if lead.impatient:
            impatience = {
                "answers": answers,
                "budget_s": lead.budget_s,
                "apology": str(apology),
                "offer": str(offer),
                "offer_dtmf": "#",
            }
            customers[lead.call_id] = {"impatience": impatience}
        else:  # the same answers in the same calm voice, however long the prompts
            steps: list[dict[str, Any]] = []
            for answer in answers:
                steps += [{"wait_for_bot": True}, {"silence": THINK_S}, {"say": answer}]
            customers[lead.call_id] = {"steps": [*steps, {"silence": 30}]}
        for mode in MODES.values():
            numbers[f"{lead.number}{mode}"] = {"customer": lead.call_id, "outcome": "answer"}
    return Scenario.model_validate(
        {"seed": 20, "outcomes": {"answer": 1.0}, "customers": customers, "numbers": numbers}
    )


MODES = {True: "1", False: "0"}  # adaptation on / off: the last digit of the number


async def _write_phrase(tts: Any, text: str, path: Path) -> Path:
    """A phrase as the adapted call speaks it (its voice, its pace): what the customer
    recognises by its sound."""
    pcm = await tts.render(text, pace=PACE)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm)
    return path


async def _add_leads(pool: Any, leads: list[Lead], adapt: bool) -> None:
    name = _script_name(adapt)
    async with pool.acquire() as conn, conn.transaction():
        settings = CampaignSettings(window="00:00-23:59", days="mon-sun", max_attempts=1)
        created = await create_campaign(conn, f"bench-{name}", name, settings)
        for lead in leads:
            number = f"{lead.number}{MODES[adapt]}"
            await add_rehearsal_call(
                conn, created.id, _call_id(lead, adapt), f"+1{number}", {"customer_name": "Alex"}
            )


def _script_name(adapt: bool) -> str:
    return f"{SCRIPT_NAME}_{'on' if adapt else 'off'}"


def _call_id(lead: Lead, adapt: bool) -> str:
    return f"{lead.call_id}-{MODES[adapt]}"


async def run_campaign(
    stack: tuple[Any, ScriptCatalog, Any, Any], leads: list[Lead], work: Path, takes: int
) -> dict[str, CallRecord]:
    """Every lead called twice, with adaptation on and off, the two calls side by side (so
    both runs share the box's load); pbxsim's records by number."""
    service, catalog, pool, _ = stack
    runtime = catalog.get(_script_name(True))
    if runtime is None:
        raise RuntimeError(f"{_script_name(True)}: {catalog.why_not(_script_name(True))}")
    apology = await _write_phrase(runtime.pack.tts, APOLOGY, work / "apology.wav")
    offer = await _write_phrase(runtime.pack.tts, OFFER, work / "offer.wav")
    for adapt in MODES:
        await _add_leads(pool, leads, adapt)
    config = SimConfig(
        scenario=scenario(leads, work, (apology, offer), takes),
        dialplan=default_dialplan(f"agi://127.0.0.1:{service.agi_port}/outdial"),
        secret=AMI_SECRET,
        bot_silence_gap=BOT_PAUSE_S,
    )
    calls = [
        (f"{lead.number}{mode}", _call_id(lead, adapt))
        for lead in leads
        for adapt, mode in MODES.items()
    ]
    async with PbxSim(config) as sim:
        for start in range(0, len(calls), CONCURRENCY):
            batch = calls[start : start + CONCURRENCY]
            await _originate(sim.ami_port, batch)
            await sim.wait_calls_done(start + len(batch), timeout=CALL_LIMIT_S * len(batch))
        return {r.number: r for r in sim.calls}


async def results(
    pool: Any, leads: list[Lead], records: dict[str, CallRecord], adapt: bool
) -> list[dict[str, Any]]:
    """Per call: kind, hung up, completed, transferred, the apology said and recognised."""
    rows = []
    for lead in leads:
        record = records.get(f"{lead.number}{MODES[adapt]}")
        call = await rehearsed_call(pool, _call_id(lead, adapt))
        patience = PATIENCE.get(record.channel) if record is not None else None
        said = [t.text for t in call.turns if t.speaker == "bot"] if call else []
        rows.append(
            {
                "call": lead.call_id,
                "impatient": lead.impatient,
                "budget_s": lead.budget_s,
                "hung_up": bool(patience and patience.gave_up),
                "completed": bool(call and call.success),
                "transferred": bool(call and call.transfer_target),
                "outcome": call.outcome if call else None,
                "apology_said": APOLOGY in said,
                "apology_heard": bool(patience and patience.apologies),
                "took_offer": bool(patience and patience.took_offer),
                "short_prompts": sum(t in SHORT_FORMS for t in said),
                "levels": patience.level if patience else 0,
                "turn_s": [round(t, 1) for t in patience.turns] if patience else [],
            }
        )
    return rows


SHORT_FORMS = {"Stay on a fixed rate?", "Book a free smart meter?", "Paperless bills?"}


def _rate(rows: list[dict[str, Any]], key: str) -> float | None:
    return round(sum(r[key] for r in rows) / len(rows), 3) if rows else None


def summary(on: list[dict[str, Any]], off: list[dict[str, Any]]) -> dict[str, Any]:
    def part(rows: list[dict[str, Any]], impatient: bool) -> list[dict[str, Any]]:
        return [r for r in rows if r["impatient"] == impatient]

    figures: dict[str, Any] = {}
    for mode, rows in (("on", on), ("off", off)):
        impatient = part(rows, True)
        figures[f"hangup_rate_{mode}"] = _rate(impatient, "hung_up")
        figures[f"completion_rate_impatient_{mode}"] = _rate(impatient, "completed")
        figures[f"transfer_rate_impatient_{mode}"] = _rate(impatient, "transferred")
        figures[f"completion_rate_calm_{mode}"] = _rate(part(rows, False), "completed")
    before, after = figures["hangup_rate_off"], figures["hangup_rate_on"]
    figures["hangup_reduction"] = round(1 - after / before, 3) if before else None  # target >= 0.4
    return figures


async def run(leads: list[Lead], work: Path, takes: int = 1) -> dict[str, Any]:
    """Call `leads` with adaptation on and off; the figures, and each call's row."""
    scripts = work / "scripts"
    scripts.mkdir(parents=True)
    for adapt in (True, False):
        source = script(adapt) | {"name": _script_name(adapt)}
        path = scripts / f"{source['name']}.yaml"
        path.write_text(yaml.safe_dump(source, allow_unicode=True, sort_keys=False))
        load_script(path)  # a bad bench script fails here, with its line
    config = Config.model_validate(
        {
            "state_dir": str(work / "state"),
            "session": {"phrase_map": {"en": PHRASE_MAP}},
            "tts": {"cache_dir": str(work / "tts")},
        }
    )
    started = time.monotonic()
    async with _call_stack(config, scripts, work, work / "nlu") as stack:
        records = await run_campaign(stack, leads, work, takes)
        await stack[3].close()  # every turn written before reading them back
        on = await results(stack[2], leads, records, adapt=True)
        off = await results(stack[2], leads, records, adapt=False)
    return {
        **summary(on, off),
        "impatient": sum(lead.impatient for lead in leads),
        "calm": sum(not lead.impatient for lead in leads),
        "takes": takes,
        "seconds": round(time.monotonic() - started, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "calls_on": on,
        "calls_off": off,
    }


def _print(result: dict[str, Any]) -> None:
    for mode in ("off", "on"):
        print(
            f"adaptation {mode:3}: impatient hang-up {result[f'hangup_rate_{mode}']}, completed "
            f"{result[f'completion_rate_impatient_{mode}']}, transferred "
            f"{result[f'transfer_rate_impatient_{mode}']}; calm completed "
            f"{result[f'completion_rate_calm_{mode}']}"
        )
        for row in result[f"calls_{mode}"]:
            print(f"  {row}")
    print(f"hang-up reduction {result['hangup_reduction']} (target >= 0.4)")
    print(f"{result['seconds']} s, load average {result['load_avg_1m']}")


def main(
    impatient: int = typer.Option(8, min=1, help="impatient customers per run"),
    calm: int = typer.Option(4, min=0, help="calm customers per run"),
    takes: int = typer.Option(1, min=1, max=len(TAKES), help="recordings of the answer"),
    as_json: bool = typer.Option(False, "--json", help="the figures as JSON on the last line"),
) -> None:
    with tempfile.TemporaryDirectory(prefix="impatience-") as tmp:
        result = asyncio.run(run(campaign(impatient, calm), Path(tmp), takes))
    _print(result)
    if as_json:
        print(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
