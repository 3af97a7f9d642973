"""`outdial script test --voice`: the scripts' cases as live calls through pbxsim.

Each case becomes a simulated customer: its `say` lines are spoken into the call (the case's
`audio:` recording, else the language pack's Piper voice speaking the words), `dtmf` keys are
pressed, `silence` is kept past the node's timeout and `hangup` hangs up. The call runs the
real path: AMI Originate, AMD, FastAGI, AudioSocket, the pack's Vosk recogniser, the NLU, the
engine, Piper. What the call left in the database (its turns, outcome, grade, compliance
events) is checked against the case's expectations; a mismatch names the step's FILE:LINE.

Only scripts whose language a pack hears run: the pack that serves the script recognises the
script's language, or `session.phrase_map` says what its words stand for in that language (the
packaged Korean model serving English scripts in tests). The others are skipped with a line
saying why. Everything happens in a scratch database and state directory: nothing reaches the
operator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panoramisk import Manager

from agi.callstore import CallStore
from agi.catalog import ScriptCatalog
from agi.service import CallService, ScriptSource, loopback_call_service
from dialer.campaigns import CampaignSettings, create_campaign
from dialog import Script, load_script
from dialog.cases import CaseResult, LoadedCases, Step, cases_dir, load_cases
from langpacks.install import plan_packs
from outdial.config import Config
from outdial.daemon import build_call_services
from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from store.db import Database
from store.kept import KeptWrites
from store.rehearsals import HeardTurn, RehearsedCall, add_rehearsal_call, rehearsed_call
from store.settings import DatabaseSettings
from store.turns import TurnWriter
from voice.packs import PACKAGED

AMI_SECRET = "script-test"
STAY_S = 15.0  # the customer's silence after the last step: the bot ends the call by then
CALL_LIMIT_S = 180.0  # one case's call takes well under this
BATCH = 2  # calls at once: the box has two cores, and latency must not change what is heard


@dataclass(frozen=True, slots=True)
class VoiceCase:
    script: Script
    source: Path  # the script's file
    loaded: LoadedCases
    index: int
    call_id: str
    number: str


@dataclass
class VoiceRun:
    results: list[CaseResult] = field(default_factory=list)
    # One line per script or case not run by voice, saying why.
    skipped: list[str] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)


def voice_scripts(config: Config, files: list[Path], run: VoiceRun) -> list[tuple[Path, Script]]:
    """The scripts a pack here hears; a skipped line for each other one."""
    scripts = [(path, load_script(path).script) for path in files]
    plan = plan_packs(config, [s for _, s in scripts])
    heard = []
    for path, script in scripts:
        why = plan.refused.get(script.name)
        pack = plan.served.get(script.name)
        mapped = bool(config.session.phrase_map.get(script.language))
        if pack is not None and pack.asr_language != script.language and not mapped:
            hears = "Korean" if pack.name == PACKAGED else pack.asr_language
            why = (
                f"no language pack hears {script.language} here (the {pack.name} pack's "
                f"recogniser hears {hears}); `outdial models install {script.language}`"
            )
        if why is not None:
            run.skipped.append(f"{script.name}: skipped, {why}")
        else:
            heard.append((path, script))
    return heard


def voice_cases(config: Config, files: list[Path], work: Path) -> tuple[list[VoiceCase], VoiceRun]:
    """The cases to call (their scripts copied into `work/scripts`), and the skipped lines.
    CaseFileError: a case file that does not fit (FILE:LINE:COL)."""
    run = VoiceRun()
    cases: list[VoiceCase] = []
    numbers = itertools.count()  # one call id and phone number per case
    for path, script in voice_scripts(config, files, run):
        case_files = sorted(cases_dir(path, script).glob("*.yaml"))
        if not case_files:
            run.untested.append(script.name)
        for loaded in map(load_cases, case_files):
            cases += _voice_cases(script, path, loaded, numbers, run)
    (work / "scripts").mkdir(parents=True)
    for source in {c.source for c in cases}:
        (work / "scripts" / source.name).write_bytes(source.read_bytes())
    return cases, run


async def run_voice_cases(
    config: Config, cases: list[VoiceCase], run: VoiceRun, work: Path, nlu_cache: Path
) -> VoiceRun:
    """The cases as calls through pbxsim; `work` is a scratch directory (voice_cases'),
    `nlu_cache` where the trained intent models are cached."""
    if not cases:
        return run
    scripts_dir = work / "scripts"
    async with _call_stack(config, scripts_dir, work, nlu_cache) as (service, catalog, pool, turns):
        customers = {}
        for case in cases:
            runtime = catalog.get(case.script.name)
            if runtime is None:
                line = f"{case.script.name}: skipped, {catalog.why_not(case.script.name)}"
                run.skipped += [line] if line not in run.skipped else []
                continue
            steps = await _customer_steps(case, runtime.pack.tts, work / "audio")
            customers[case.call_id] = (case, steps)
        if customers:
            await _add_calls(pool, [c for c, _ in customers.values()])
            await _run_calls(service.agi_port, customers)
        await turns.close()  # every turn written before reading them back
        for case, _ in customers.values():
            call = await rehearsed_call(pool, case.call_id)
            run.results.append(_check(case, call))
    run.results.sort(key=lambda r: (r.script, str(r.file), r.line))
    return run


def _voice_cases(
    script: Script, source: Path, loaded: LoadedCases, numbers: Iterator[int], run: VoiceRun
) -> Iterator[VoiceCase]:
    for index, case in enumerate(loaded.cases.cases):
        if any(step.emotion is not None for step in case.steps):
            run.skipped.append(
                f"{script.name} / {case.name}: skipped, an emotion step cannot be voiced"
            )
        elif case.variant is not None:
            run.skipped.append(f"{script.name} / {case.name}: skipped, variants are not voiced")
        else:
            n = next(numbers)
            voiced = VoiceCase(script, source, loaded, index, f"voice-{n}", f"5550{n:04d}")
            lost = _missing_recording(voiced)
            if lost is None:
                yield voiced
            else:
                run.results.append(lost)


def _missing_recording(case: VoiceCase) -> CaseResult | None:
    """A failure at the first step whose `audio:` file is not there (before any call)."""
    for number, step in enumerate(case.loaded.cases.cases[case.index].steps):
        if step.audio is not None and not (case.loaded.path.parent / step.audio).is_file():
            line = case.loaded.line_of(case.index, number)
            path = case.loaded.path.parent / step.audio
            return _result(case, number, line, f"audio: no such file {path}")
    return None


def _result(case: VoiceCase, steps: int, line: int, failure: str | None = None) -> CaseResult:
    name = case.loaded.cases.cases[case.index].name
    return CaseResult(case.script.name, name, case.loaded.path, line, steps, failure)


async def _customer_steps(case: VoiceCase, tts: Any, audio_dir: Path) -> list[dict[str, Any]]:
    """pbxsim's customer: before each step it waits for the bot to finish talking."""
    steps: list[dict[str, Any]] = []
    silence_s = max(_timeouts_ms(case.script)) / 1000 + 1.5
    for number, step in enumerate(case.loaded.cases.cases[case.index].steps):
        steps.append({"wait_for_bot": True})
        if step.say is not None:
            steps.append({"say": str(await _speech(case, number, step, tts, audio_dir))})
        elif step.dtmf is not None:
            steps.append({"dtmf": step.dtmf})
        elif step.silence:
            steps.append({"silence": silence_s})
        elif step.hangup:
            steps.append({"hangup": True})
    return [*steps, {"silence": STAY_S}]


def _timeouts_ms(script: Script) -> list[int]:
    return [getattr(node, "timeout_ms", 0) for node in script.nodes.values()] + [0]


async def _speech(case: VoiceCase, number: int, step: Step, tts: Any, audio_dir: Path) -> Path:
    """The customer's recording of the line, or the pack's voice speaking it."""
    if step.audio is not None:
        return case.loaded.path.parent / step.audio
    assert step.say is not None
    path = audio_dir / f"{case.call_id}-{number}.wav"
    pcm = await tts.render(step.say)  # 8 kHz signed 16-bit mono
    await asyncio.to_thread(_write_wav, path, pcm)
    return path


def _write_wav(path: Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm)


@contextlib.asynccontextmanager
async def _call_stack(
    config: Config, scripts_dir: Path, work: Path, nlu_cache: Path
) -> AsyncIterator[tuple[CallService, ScriptCatalog, Any, TurnWriter]]:
    """The daemon's call path over a scratch embedded database."""
    db = await Database.open(DatabaseSettings(), work / "db")
    try:
        services = await build_call_services(config)
        catalog = ScriptCatalog(scripts_dir, services, nlu_cache, db.pool)
        await catalog.reload()
        turns = TurnWriter(db.pool, work / "spool")
        await turns.start()
        kept = KeptWrites.create(db.pool, work / "spool")
        await kept.start()
        service = await loopback_call_service(
            services, ScriptSource(catalog.get), CallStore(db.pool, kept), turns
        )
        try:
            yield service, catalog, db.pool, turns
        finally:
            await service.drain(5)
            await turns.close()
            await kept.close()
            services.shutdown()
    finally:
        await db.close()


async def _add_calls(pool: Any, cases: list[VoiceCase]) -> None:
    settings = CampaignSettings(window="00:00-23:59", days="mon-sun", max_attempts=1)
    campaigns: dict[str, int] = {}
    async with pool.acquire() as conn, conn.transaction():
        for case in cases:
            name = case.script.name
            if name not in campaigns:
                campaigns[name] = (await create_campaign(conn, f"voice-{name}", name, settings)).id
            fields = dict(case.loaded.cases.cases[case.index].variables)
            await add_rehearsal_call(
                conn, campaigns[name], case.call_id, f"+1{case.number}", fields
            )


async def _run_calls(agi_port: int, customers: dict[str, tuple[VoiceCase, list[Any]]]) -> None:
    numbers = {
        case.number: {"customer": call_id, "outcome": "answer"}
        for call_id, (case, _) in customers.items()
    }
    scenario = Scenario.model_validate(
        {
            "seed": 1,
            "outcomes": {"answer": 1.0},
            "numbers": numbers,
            "customers": {call_id: {"steps": steps} for call_id, (_, steps) in customers.items()},
        }
    )
    dialplan = default_dialplan(f"agi://127.0.0.1:{agi_port}/outdial")
    config = SimConfig(scenario=scenario, dialplan=dialplan, secret=AMI_SECRET, bot_silence_gap=1.0)
    calls = [(case.number, call_id) for call_id, (case, _) in customers.items()]
    async with PbxSim(config) as sim:
        for start in range(0, len(calls), BATCH):
            batch = calls[start : start + BATCH]
            await _originate(sim.ami_port, batch)
            await sim.wait_calls_done(start + len(batch), timeout=CALL_LIMIT_S * len(batch))


async def _originate(ami_port: int, calls: list[tuple[str, str]]) -> None:
    """As the dialer does: Originate into the bot's context with the call's id."""
    manager = Manager(host="127.0.0.1", port=ami_port, username="outdial", secret=AMI_SECRET)
    await manager.connect()
    try:
        for number, call_id in calls:
            await manager.send_action(
                {
                    "Action": "Originate",
                    "Channel": f"Local/{number}@customers",
                    "Context": "bot-agi",
                    "Exten": "s",
                    "Priority": "1",
                    "Async": "true",
                    "Timeout": "20000",
                    "Variable": f"OUTDIAL_CALL_ID={call_id}",
                }
            )
    finally:
        manager.close()


# --- checking what the call did ------------------------------------------------------------


def _check(case: VoiceCase, call: RehearsedCall | None) -> CaseResult:
    steps = case.loaded.cases.cases[case.index].steps
    if call is None:
        return _result(case, 0, case.loaded.line_of(case.index), "the call was not recorded")
    heard = _Turns(call.turns)
    for number, step in enumerate(steps):
        problems = list(_step_mismatches(step, heard, call))
        if problems:
            line = case.loaded.line_of(case.index, number)
            return _result(case, number + 1, line, "; ".join(problems))
    return _result(case, len(steps), case.loaded.line_of(case.index))


@dataclass
class _Turns:
    """The call's turns, walked step by step: each `say` or `dtmf` step is the next customer
    turn; what the bot said after it, until the next customer turn, is that step's reply."""

    turns: list[HeardTurn]
    at: int = -1  # index of the current step's customer turn

    def next_customer(self) -> HeardTurn | None:
        for i in range(self.at + 1, len(self.turns)):
            if self.turns[i].speaker == "customer":
                self.at = i
                return self.turns[i]
        self.at = len(self.turns)
        return None

    def reply(self) -> list[HeardTurn]:
        after = self.turns[self.at + 1 :]
        end = next((i for i, t in enumerate(after) if t.speaker == "customer"), len(after))
        return [t for t in after[:end] if t.speaker == "bot"]

    def waiting_at(self) -> str | None:
        """The listen node the call waited at after the reply (where it heard next)."""
        later = self.turns[self.at + 1 :]
        customer = next((t for t in later if t.speaker == "customer"), None)
        if customer is not None:
            return customer.node
        reply = self.reply()
        return reply[-1].node if reply else None


def _step_mismatches(step: Step, heard: _Turns, call: RehearsedCall) -> Iterator[str]:
    if step.say is not None or step.dtmf is not None:
        turn = heard.next_customer()
        if turn is None:
            yield "the bot heard nothing for this step"
            return
        if step.say is not None and step.intent is not None and turn.intent != step.intent:
            yield f"expected intent {step.intent!r}, heard {turn.text!r} as {turn.intent!r}"
        for name, value in step.set.items():
            if value not in turn.entity_values:
                yield f"expected {name} = {value!r}, heard {turn.text!r} with {turn.entity_values}"
    said = " | ".join(t.text for t in heard.reply())
    wanted = [step.says] if isinstance(step.says, str) else step.says or []
    for text in wanted:
        if text not in said:
            yield f"expected the bot to say {text!r}, it said {said!r}"
    if step.node is not None and heard.waiting_at() != step.node:
        yield f"expected to wait at node {step.node!r}, reached {heard.waiting_at()!r}"
    yield from _call_mismatches(step, call)


def _call_mismatches(step: Step, call: RehearsedCall) -> Iterator[str]:
    checks: list[tuple[str, object, object]] = [
        ("transfer", step.transfer, call.transfer_target),
        ("outcome", step.outcome, call.outcome),
        ("disposition", step.disposition, call.disposition),
        ("success", step.success, call.success),
        ("grade", step.grade, call.grade),
        ("paused", step.paused, call.paused),
        ("opted_out", step.opted_out, call.outcome == "opt_out"),
    ]
    for name, expected, got in checks:
        if expected is not None and expected != got:
            yield f"expected {name} {expected!r}, the call ended with {got!r}"
    missing = [c for c in step.compliance if c not in call.compliance]
    if missing:
        yield f"expected compliance events {missing}, got {sorted(call.compliance)}"
