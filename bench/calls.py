"""Live-call timing as the caller hears it: pbxsim customers in real time against `outdial run`.

The daemon runs as its own process (so its CPU and memory are measured alone) with its dialer
pointed at pbxsim, keeping `--concurrency` calls up for `--duration` seconds; the customers run
in this process, apart from it. Every run has every kind of customer (lead i is kind i % 6):
the expected answer; an unexpected one (the no-match re-prompt); "who is this?" (answered with
the lead's order number, synthesised on the critical path); hesitant answers with a 300-700 ms
pause inside ("yes, ... good": the "yes," ends in espeak-ng's continuation rise, a turn-holding
cue; after a falling "yes." the same pause is still cut into); one who talks over the
read-back of the order; and a line with background noise (-40 dBFS) and the bot's own audio
echoed back at -20 dB. The customers speak Korean words (the only ASR model a plain install
has) that `session.phrase_map` maps to the English script's answers; every customer says
"hello" first, while pbxsim's AMD listens.
Audio arrives as a real PBX sends it: random even lengths (`--framing random`, the default) or
20 ms frames with a partial last one (`--framing asterisk`).

The headline figures come from frame arrival times on the customer's side of the wire
(pbxsim.wire, the customer's own clock; audible = RMS >= 1 % of full scale):

- response_ms: the customer's last voiced frame -> the first audible bot frame after it;
- bargein_cut_ms: the first voiced frame of a customer talking over a prompt -> the last
  audible bot frame before a gap of at least 200 ms (raw);
- greeting_ms: the end of the customer's "hello" -> the first audible bot frame (AMD inside);
- false_cutin_rate: hesitant answers the bot talked into, over hesitant answers;
- false_stop_rate: barge-ins the daemon logged on the echo and noise line, less those that
  came while its customer was talking over the bot (per call; the customer never barges in,
  but answers into a pause of a prompt that then goes on), over the bot's prompts heard on
  that line.

`breakdown` gives the daemon's own timings (endpoint -> first frame out, and its stages); they
are never a headline figure. `behaviour` counts what the bot did for the customers who test
it; late frames, CPU and memory are as before; `failed_calls` must be 0.

    .venv/bin/python bench/calls.py --concurrency 8 --duration 60 --asr grammar \
        [--framing random|asterisk] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dialer.campaigns import CampaignSettings, create_campaign  # noqa: E402
from pbxsim import PbxSim, Scenario, SimConfig, wire  # noqa: E402
from pbxsim.dialplan import DialplanStep, default_dialplan  # noqa: E402
from pbxsim.records import CallRecord  # noqa: E402
from pbxsim.scenario import read_wav  # noqa: E402
from store.db import Database  # noqa: E402
from store.settings import DatabaseSettings  # noqa: E402
from voice.settings import VadSettings  # noqa: E402

AUDIO = ROOT / "outdial" / "demo_audio"
WORDS = ROOT / "tests" / "fixtures" / "audio"  # espeak-ng Korean words (see its README.md)
# What the Korean words stand for: 여보세요 ("hello?") is the greeting before the media connects
# and "who is this?" once the bot talks.
PHRASE_MAP = {"네": "yes", "아니요": "no", "좋아요": "yes", "여보세요": "who is this"}
# The unexpected answer, in English (Piper, joe): the Korean grammar hears a mix of its words,
# which is no phrase of it, so the node takes its no-match path (checked against the grammar at
# five start offsets; "I paid that bill last week" came out as 네 three times in five).
UNEXPECTED = "Hang on, let me check with my wife about that."
HESITANT_PAUSE_S = (0.3, 0.45, 0.55, 0.7)  # "yes ... good": the pause inside the answer
ECHO_LINE = "echo_line"  # background noise and the bot's own prompt echoed at -20 dB
SECRET = "bench"
RING_SPREAD_S = 8.0
THINK_S = (0.0, 0.4, 0.8, 1.2)  # a customer's pause before answering, on top of the 0.7 s
NAMES = ["Alex", "Maria", "James", "Priya", "Chen", "Fatima", "Lucas", "Olivia", "Noah", "Yuki"]
ITEMS = ["a lamp", "two chairs", "a desk", "a rug", "a bookcase", "a mirror", "a sofa"]
STREETS = ["Oak Street", "Maple Avenue", "Pine Road", "Cedar Lane", "Elm Court", "Birch Way"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clip(tmp: Path, name: str) -> str:
    """A fixture utterance with its leading and trailing silence cut off (the fixtures carry
    0.3 s before and 0.8 s after), so the pauses the scenario sets are the pauses on the wire."""
    pcm, rate = read_wav(WORDS / f"{name}.wav")
    voiced = np.flatnonzero(np.abs(pcm) >= 0.01 * 32768)
    out = tmp / f"{name}.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm[voiced[0] : voiced[-1] + 1].astype("<i2").tobytes())
    return str(out)


def _kinds(tmp: Path) -> dict[str, list[dict]]:
    """Each kind of customer's steps. Marks name what pbxsim.wire measures: `hello` (the
    greeting, with AMD in the path), answers (`answer/<kind>`), `barge` (talking over a prompt),
    `pause` (the first part of a hesitant answer)."""
    names = ("ko_hello_1", "ko_yes_1", "ko_yes_2", "ko_yes_holding_2", "ko_ok_1")
    clip = {name: _clip(tmp, name) for name in names}
    hello, yes, yes2 = clip["ko_hello_1"], clip["ko_yes_1"], clip["ko_yes_2"]
    talk, tail = {"wait_for_bot": True}, {"silence": 20}

    def say(path: str, mark: str) -> dict:
        return {"say": path, "mark": mark}

    opening = [say(hello, wire.HELLO), talk]
    kinds = {
        f"expected_{think}": [*opening, {"silence": think}, say(yes, "answer/expected"), talk,
                              {"silence": think}, say(yes2, "answer/expected"), tail]
        for think in THINK_S
    }  # fmt: skip
    kinds["unexpected"] = [*opening, say(yes, "answer/expected"), talk,
                           {"say_text": UNEXPECTED, "mark": "answer/unexpected"}, talk,
                           say(yes2, "answer/expected"), tail]  # fmt: skip
    kinds["who_is_this"] = [*opening, say(yes, "answer/expected"), talk,
                            say(hello, "answer/who_is_this"), talk,
                            say(yes2, "answer/expected"), tail]  # fmt: skip
    for pause in HESITANT_PAUSE_S:
        kinds[f"hesitant_{pause}"] = [*opening, say(yes, "answer/expected"), talk,
                                      say(clip["ko_yes_holding_2"], wire.PAUSE), {"silence": pause},
                                      say(clip["ko_ok_1"], "answer/hesitant"), tail]  # fmt: skip
    # 1 s into the read-back "Thanks. Order A-1 for a lamp is ready to ship to 1 Oak.", whose
    # second sentence the answer interrupts.
    kinds["barges_in"] = [*opening, say(yes, "answer/expected"), {"barge_in_after": 1.0},
                          say(yes2, wire.BARGE), tail]  # fmt: skip
    kinds[ECHO_LINE] = kinds[f"expected_{THINK_S[1]}"]
    return kinds


def kind_of(customer: str) -> str:
    """The customer kind a scenario customer belongs to (its name without the variant)."""
    return customer.rsplit("_", 1)[0] if customer[-1].isdigit() else customer


def _scenario(framing: str, tmp: Path, leads: int = 0) -> Scenario:
    """Every kind of customer in every run: lead i is pinned to kind i % 6 (and, within a
    kind, to one of its variants); numbers not seeded (the soak's API leads) are drawn."""
    kinds = _kinds(tmp)
    groups: dict[str, list[str]] = {}
    for name in kinds:
        groups.setdefault(kind_of(name), []).append(name)
    order = list(groups)
    pins = {
        f"+1202555{i:04d}": {"customer": variants[(i // len(order)) % len(variants)]}
        for i in range(leads)
        for variants in [groups[order[i % len(order)]]]
    }
    noisy = {"framing": framing, "line": "trunk", "noise_dbfs": -40.0, "echo_db": -20.0}
    customers = {
        name: {
            "weight": 1 / len(groups[kind_of(name)]),
            "steps": steps,
            **({"media": noisy} if name == ECHO_LINE else {}),
        }
        for name, steps in kinds.items()
    }
    return Scenario.model_validate(
        {
            "seed": 3,
            "media": {"framing": framing},
            # Calls placed together are answered over several seconds, as people pick up.
            "ring_seconds": 2.0,
            "ring_spread": RING_SPREAD_S,
            "outcomes": {"answer": 1.0},
            "customers": customers,
            "numbers": pins,
        }
    )


def _bench_script(directory: Path, asr: str) -> None:
    """The shipped English script; in free mode without grammars, so Vosk decodes freely.
    Its A/B variant is left out: every call takes the same path, so the barging customers
    talk over the same prompt."""
    source = yaml.safe_load((ROOT / "scripts" / "order_confirmation_en.yaml").read_text())
    source.pop("variants", None)
    # "who is this?" at the read-back's question, answered with the lead's order number (so
    # it is synthesised on the critical path), as the shipped script's who_is_this handler says.
    # The node answers it itself (the shipped script's who_is_this handler cannot be reached
    # in grammar mode: an `expect` intent must be one of the node's).
    confirm = source["nodes"]["confirm_order"]
    confirm["intents"]["who_is_this"] = "who_is_calling"
    confirm["expect"]["who_is_this"] = ["who is this"]
    source["nodes"]["who_is_calling"] = {
        "kind": "say",
        "text": source["handlers"]["who_is_this"]["say"],
        "next": "confirm_order",
    }
    if asr == "free":
        for node in source["nodes"].values():
            node.pop("expect", None)
    (directory / "order_confirmation_en.yaml").write_text(
        yaml.safe_dump(source, allow_unicode=True)
    )


def _config(
    tmp: Path,
    db_url: str,
    ports: dict[str, int],
    concurrency: int,
    vad: dict[str, object] | None = None,
) -> Path:
    config: dict[str, object] = {
        "state_dir": str(tmp / "state"),
        "database": {"url": db_url},
        "metrics": {"port": ports["metrics"]},
        "agi": {"port": ports["agi"]},
        "audiosocket": {"port": _free_port()},
        "scripts_dir": str(tmp / "scripts"),
        "session": {"phrase_map": {"en": PHRASE_MAP}, "max_calls": concurrency},
        "trunks": [
            {
                "name": "pbxsim",
                "port": ports["ami"],
                "username": "outdial",
                "dial_string": "Local/{number}@customers",
                "context": "bot-amd",
                "cps": 20,
                "max_channels": concurrency,
                "ring_timeout_s": 20,
            }
        ],
        "dialer": {"max_channels": concurrency},
    }
    if vad:
        config["asr"] = {"vad": vad}
    path = tmp / "outdial.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Measures:
    """Wire figures over calls (seconds), from pbxsim.wire, and the frame counts."""

    greeting: list[float] = field(default_factory=list)
    response: dict[str, list[float]] = field(default_factory=dict)  # by the answer's mark
    response_by_kind: dict[str, list[float]] = field(default_factory=dict)  # by customer kind
    bargein_cut: list[float] = field(default_factory=list)
    hesitant_turns: int = 0
    false_cutins: int = 0
    cutins_by_customer: dict[str, list[int]] = field(default_factory=dict)  # [cut in, turns]
    echo_prompts: int = 0  # the bot's prompts on the echo and noise line
    amd: list[float] = field(default_factory=list)
    late_frames: int = 0
    late_frames_pbxsim_stalled: int = 0
    bot_frames: int = 0

    @property
    def responses(self) -> list[float]:
        return [t for times in self.response.values() for t in times]


class LoopStalls:
    """Spans in which this process's event loop (pbxsim's) was held up for over 40 ms: a bot
    frame stamped late then may have been on time on the wire (pbxsim shares the cores)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            after = time.monotonic()
            if after - before > 0.04:
                self.spans.append((before, after))

    def overlaps(self, start: float, end: float) -> bool:
        return any(s < end and e > start for s, e in self.spans)


def measure(record: CallRecord, into: Measures, stalls: LoopStalls) -> None:
    bot = [f.t for f in record.bot_frames]
    into.bot_frames += len(bot)
    # A frame is late when it arrives more than 40 ms after its 20 ms slot, counted once per
    # stall (a gap over 60 ms), not again for every frame that follows it.
    late = [(a, b) for a, b in itertools.pairwise(bot) if 0.06 < b - a <= wire.CUT_GAP_S]
    into.late_frames += len(late)
    into.late_frames_pbxsim_stalled += sum(1 for a, b in late if stalls.overlaps(a, b))
    if record.amd_seconds is not None:
        into.amd.append(record.amd_seconds)
    timings = wire.measure(record)
    into.greeting += timings.greeting
    for mark, times in timings.responses.items():
        into.response.setdefault(mark, []).extend(times)
        into.response_by_kind.setdefault(kind_of(record.customer), []).extend(times)
    into.bargein_cut += timings.bargein_cuts
    into.hesitant_turns += timings.hesitant_turns
    into.false_cutins += timings.false_cutins
    if timings.hesitant_turns:
        tally = into.cutins_by_customer.setdefault(record.customer, [0, 0])
        tally[0] += timings.false_cutins
        tally[1] += timings.hesitant_turns
    if record.customer == ECHO_LINE:
        into.echo_prompts += timings.prompts


async def _behaviour(db: Database, records: list[CallRecord]) -> dict[str, int]:
    """What the bot did for the customers who test it, from the turn log: answered "who is
    this?" with the lead's order number; re-prompted after the unexpected answer; stopped on
    the echo and noise line (and on the same answers on a clean line, the control)."""
    kind_calls: dict[str, list[str]] = {}
    for record in records:
        if record.call_id is not None:
            kind_calls.setdefault(kind_of(record.customer), []).append(record.call_id)
    rows = await db.pool.fetch(
        "SELECT call_id, speaker, intent, text, barge_in FROM turns "
        "WHERE call_id = ANY($1::text[]) ORDER BY call_id, seq",
        [c for calls in kind_calls.values() for c in calls],
    )
    turns: dict[str, list] = {}
    for row in rows:
        turns.setdefault(row["call_id"], []).append(row)

    def replies(calls: list[str], intent: str, said: str) -> tuple[int, int]:
        """(calls where the customer's `intent` was heard, of those the bot's next turn
        matched `said`)."""
        asked = answered = 0
        for call in calls:
            rows = turns.get(call, [])
            heard = [i for i, r in enumerate(rows) if r["intent"] == intent]
            if heard:
                asked += 1
                after = [r for r in rows[heard[0] + 1 :] if r["speaker"] == "bot"]
                answered += bool(after and re.search(said, after[0]["text"]))
        return asked, answered

    who_asked, who_answered = replies(
        kind_calls.get("who_is_this", []), "who_is_this", r"about order A-\d+"
    )
    unexpected = kind_calls.get("unexpected", [])
    reprompted = sum(
        any(r["speaker"] == "bot" and "didn't get that" in r["text"] for r in turns.get(c, []))
        for c in unexpected
    )
    echo_calls = kind_calls.get(ECHO_LINE, [])

    def stops(calls: list[str]) -> int:
        return sum(r["barge_in"] for c in calls for r in turns.get(c, []))

    # A stop is the echo's or the noise's only when the customer was not talking over the
    # bot: an answer begun in a pause of a prompt (synthesis fell behind on the loaded box,
    # the customer took the silence for the end) stops it rightly, on any line.
    talked_over = {r.call_id: wire.measure(r).talked_over for r in records}

    def unexplained_stops(calls: list[str]) -> int:
        return sum(max(0, stops([c]) - talked_over.get(c, 0)) for c in calls)

    return {
        "who_is_this_heard": who_asked,
        "who_is_this_answered_with_order": who_answered,
        "unexpected_calls": len(unexpected),
        "unexpected_reprompted": reprompted,
        "echo_line_calls": len(echo_calls),
        "echo_line_stops": stops(echo_calls),
        "echo_line_false_stops": unexplained_stops(echo_calls),
        # The control: the same answers on a clean line (no echo, no noise).
        "expected_calls": len(kind_calls.get("expected", [])),
        "expected_stops": stops(kind_calls.get("expected", [])),
        "expected_false_stops": unexplained_stops(kind_calls.get("expected", [])),
    }


async def _daemon_counters(port: int) -> dict[str, int]:
    """The daemon's own counts from its metrics endpoint: media clock ticks it was late for
    (tells a stall in the daemon from one in pbxsim, which shares the two cores) and silence
    frames it sent inside prompts because synthesis fell behind (a pause the caller hears)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        response.raise_for_status()
        text = await response.text()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    wanted = {"outdial_late_frames_total": "daemon_late_ticks",
              "outdial_starved_frames_total": "starved_frames",
              "outdial_word_times_clamped_total": "word_times_clamped"}  # fmt: skip
    missing = sorted(set(wanted) - set(samples))
    if missing:
        raise RuntimeError(f"the daemon's metrics lack {missing}")
    return {key: int(samples[name]) for name, key in wanted.items()}


async def _processing_stages(db: Database) -> dict[str, list[float]]:
    """Where processing time goes, from the daemon's own timings: each reply turn against the
    customer turn it answers (endpoint -> ASR final -> NLU and emotion done -> first frame)."""
    rows = await db.pool.fetch(
        """
        SELECT c.timings AS heard, b.timings AS said FROM turns b
        JOIN LATERAL (
            SELECT timings FROM turns c
            WHERE c.call_id = b.call_id AND c.seq < b.seq AND c.speaker = 'customer'
              AND c.timings ? 'asr_final'
            ORDER BY c.seq DESC LIMIT 1
        ) c ON true
        WHERE b.speaker = 'bot' AND b.timings ? 'processing_ms'
        """
    )
    stages: dict[str, list[float]] = {"stage_asr": [], "stage_understand": [], "stage_speak": []}
    for row in rows:
        heard, said = row["heard"], row["said"]
        stages["stage_asr"].append(heard["asr_final"] - heard["endpoint"])
        stages["stage_understand"].append(heard["nlu_done"] - heard["asr_final"])
        stages["stage_speak"].append(said["first_audio_out"] - heard["nlu_done"])
    return stages


def _rate(count: int, total: int) -> float | None:
    return round(count / total, 3) if total else None


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0] * 1000, 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 1)


async def _wait_ready(notify: socket.socket, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"outdial run exited with {proc.returncode} before READY")
        try:
            data = await asyncio.wait_for(loop.sock_recv(notify, 4096), timeout=1)
        except TimeoutError:
            continue
        if b"READY=1" in data:
            return
    raise RuntimeError("outdial run did not send READY=1 within 180 s")


async def run(
    concurrency: int,
    duration: float,
    asr: str,
    framing: str,
    calls: int | None = None,
    vad: dict[str, object] | None = None,
) -> dict[str, object]:
    """`calls`: place exactly that many calls (one lead each, the kinds in turn) and stop when
    they are done, `duration` being then a cap; else keep calling for `duration` seconds.
    `vad`: settings of the daemon's `asr.vad` (the defaults when None)."""
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "scripts").mkdir()
        _bench_script(tmp / "scripts", asr)
        db = await Database.open(DatabaseSettings(), tmp / "db")
        try:
            return await _run(tmp, db, concurrency, duration, asr, framing, calls, vad)
        finally:
            await db.close()


async def _seed(db: Database, leads: int) -> None:
    async with db.pool.acquire() as conn:
        campaign = await create_campaign(
            conn,
            "bench",
            "order_confirmation_en",
            CampaignSettings(window="00:00-23:59", days="mon-sun", max_attempts=1),
        )
        await conn.executemany(
            "INSERT INTO leads (campaign_id, phone_e164, timezone, fields) VALUES ($1,$2,'UTC',$3)",
            [(campaign.id, f"+1202555{i:04d}", _lead_fields(i)) for i in range(leads)],
        )


def _lead_fields(i: int) -> dict[str, str]:
    """Every lead's own order and address, as in a real campaign: the prompts that carry
    them are synthesised on every call (nothing personal is cached)."""
    return {
        "customer_name": NAMES[i % len(NAMES)],
        "order_number": f"A-{1000 + i}",
        "item": ITEMS[i % len(ITEMS)],
        "address": f"{10 + i} {STREETS[i % len(STREETS)]}",
    }


async def _run(
    tmp: Path,
    db: Database,
    concurrency: int,
    duration: float,
    asr: str,
    framing: str,
    calls: int | None,
    vad: dict[str, object] | None,
) -> dict:
    agi_port = _free_port()
    dialplan = default_dialplan(f"agi://127.0.0.1:{agi_port}/outdial")
    dialplan["orders_queue"] = [DialplanStep.model_validate(s) for s in ("Answer()", "Hangup()")]
    # Customers answer once the bot has been quiet for 0.7 s (not in a pause between sentences).
    leads = calls or concurrency * max(2, int(duration / 15) + 2)
    sim_config = SimConfig(
        scenario=_scenario(framing, tmp, leads),
        dialplan=dialplan,
        secret=SECRET,
        bot_silence_gap=0.7,
    )
    stalls = LoopStalls()
    async with PbxSim(sim_config) as sim:
        await _seed(db, leads)
        ports = {"ami": sim.ami_port, "agi": agi_port, "metrics": _free_port()}
        config = _config(tmp, db.url, ports, concurrency, vad)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp / "notify.sock"))
        notify.setblocking(False)
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(tmp / "notify.sock"),
            "OUTDIAL_AMI_SECRET": SECRET,
        }
        proc = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv" / "bin" / "outdial"), "--config", str(config), "run",
            env=env, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await _wait_ready(notify, proc)
            daemon = psutil.Process(proc.pid)
            idle_rss = daemon.memory_info().rss
            cpu_before = daemon.cpu_times()
            stalls.start()
            started = time.monotonic()
            peak_rss = idle_rss
            while time.monotonic() - started < duration and not (
                calls and sum(r.done for r in sim.calls) >= calls
            ):
                await asyncio.sleep(1)
                peak_rss = max(peak_rss, daemon.memory_info().rss)
            cpu_after = daemon.cpu_times()
            stalls.stop()
            counters = await _daemon_counters(ports["metrics"])
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=120)
            notify.close()
        records = [r for r in sim.calls if r.done and r.media_connected_at]
    measures = Measures()
    for record in records:
        measure(record, measures, stalls)
    call_seconds = sum(
        (r.bot_frames[-1].t - r.media_connected_at[0]) for r in records if r.bot_frames
    )
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    # The daemon logs endpoint -> first frame out on each reply turn (both on its own clock).
    processing = [
        row["ms"] / 1000
        for row in await db.pool.fetch(
            "SELECT (timings->>'processing_ms')::float AS ms FROM turns "
            "WHERE speaker = 'bot' AND timings ? 'processing_ms'"
        )
    ]
    stages = await _processing_stages(db)
    outcomes = {
        f"{r['outcome']}": r["n"]
        for r in await db.pool.fetch(
            "SELECT coalesce(outcome, disposition, 'unfinished') AS outcome, count(*) AS n "
            "FROM calls GROUP BY 1 ORDER BY 2 DESC"
        )
    }
    failed_calls = await db.pool.fetchval("SELECT count(*) FROM calls WHERE disposition = 'error'")
    call_s = await db.pool.fetchval(
        "SELECT percentile_cont(0.5) WITHIN GROUP "
        "(ORDER BY extract(epoch FROM ended_at - started_at)) FROM calls WHERE ended_at IS NOT NULL"
    )
    kinds = {kind_of(r.customer) for r in records}
    behaviour = await _behaviour(db, records)
    # Stops on echo or noise: the daemon's own record of a barge-in on the echo line, less
    # those the customer talked over the bot for (a count, not a timing); the prompts are
    # counted on the wire.
    false_stops = behaviour["echo_line_false_stops"]
    return {
        "asr": asr,
        "framing": framing,
        "concurrency": concurrency,
        "duration_s": duration,
        "calls": len(records),
        "customer_kinds": sorted(kinds),
        "failed_calls": failed_calls,
        "response_ms_p50": _pct(measures.responses, 50),
        "response_ms_p95": _pct(measures.responses, 95),
        "bargein_cut_ms_p50": _pct(measures.bargein_cut, 50),
        "bargein_cut_ms_p95": _pct(measures.bargein_cut, 95),
        "greeting_ms_p50": _pct(measures.greeting, 50),
        "greeting_ms_p95": _pct(measures.greeting, 95),
        "false_cutin_rate": _rate(measures.false_cutins, measures.hesitant_turns),
        "false_stop_rate": _rate(false_stops, measures.echo_prompts),
        "counts": {
            "responses": {mark: len(t) for mark, t in sorted(measures.response.items())},
            "bargeins": len(measures.bargein_cut),
            "greetings": len(measures.greeting),
            "hesitant_turns": measures.hesitant_turns,
            "false_cutins": measures.false_cutins,
            "false_cutins_by_pause": {
                name: f"{cut} of {turns}"
                for name, (cut, turns) in sorted(measures.cutins_by_customer.items())
            },
            "echo_line_prompts": measures.echo_prompts,
            "false_stops": false_stops,
        },
        "behaviour": behaviour,
        "response_ms_p50_p95_by_answer": {
            mark: [_pct(times, 50), _pct(times, 95)]
            for mark, times in sorted(measures.response.items())
        },
        "response_ms_p95_by_customer": {
            kind: _pct(times, 95) for kind, times in sorted(measures.response_by_kind.items())
        },
        # The daemon's own clock: a breakdown only, never a headline figure.
        "breakdown": {
            "processing_p50_ms": _pct(processing, 50),
            "processing_p95_ms": _pct(processing, 95),
            **{
                f"{stage}_p{q}_ms": _pct(values, q)
                for stage, values in stages.items()
                for q in (50, 95)
            },
        },
        "amd_ms_p95": _pct(measures.amd, 95),
        "late_frames": measures.late_frames,
        "late_frames_pbxsim_stalled": measures.late_frames_pbxsim_stalled,
        **counters,
        "bot_frames": measures.bot_frames,
        "cpu_ms_per_call_s": round(cpu_s * 1000 / call_seconds, 1) if call_seconds else None,
        "rss_mb_per_call": round((peak_rss - idle_rss) / 2**20 / concurrency, 1),
        "rss_idle_mb": round(idle_rss / 2**20, 1),
        "call_s_p50": round(call_s, 1) if call_s is not None else None,
        "outcomes": outcomes,
    }


def _vad(args: argparse.Namespace) -> dict[str, object]:
    """The `asr.vad` settings the options ask for."""
    end_of_turn: dict[str, object] = {}
    vad: dict[str, object] = {"end_of_turn": end_of_turn}
    if args.complete_silence_ms is not None:
        end_of_turn["complete_silence_ms"] = args.complete_silence_ms
        vad["pad_ms"] = min(VadSettings().pad_ms, args.complete_silence_ms)
    if args.no_holding_prosody:
        end_of_turn["holding_prosody"] = False
    if args.no_judge_on_final:
        end_of_turn["judge_on_final"] = False
    return vad if end_of_turn else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument(
        "--calls", type=int, help="place this many calls and stop (--duration is then a cap)"
    )
    parser.add_argument("--asr", choices=("grammar", "free"), default="grammar")
    parser.add_argument(
        "--framing",
        choices=("random", "asterisk"),
        default="random",
        help="how customers' audio is framed (pbxsim media.framing)",
    )
    parser.add_argument(
        "--complete-silence-ms",
        type=int,
        help="the daemon's asr.vad.end_of_turn.complete_silence_ms (its default when unset; "
        "asr.vad.pad_ms, which must not exceed it, is lowered to it when needed)",
    )
    parser.add_argument(
        "--no-holding-prosody",
        action="store_true",
        help="asr.vad.end_of_turn.holding_prosody off (the turn-holding pitch check)",
    )
    parser.add_argument(
        "--no-judge-on-final",
        action="store_true",
        help="asr.vad.end_of_turn.judge_on_final off (the silence fill and final judgement)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = asyncio.run(
        run(args.concurrency, args.duration, args.asr, args.framing, args.calls, _vad(args))
    )
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
