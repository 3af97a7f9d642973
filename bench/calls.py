"""Live-call latency and capacity: pbxsim customers in real time against `outdial run`.

The daemon runs as its own process (so its CPU and memory are measured alone) with its dialer
pointed at pbxsim, keeping `--concurrency` calls up for `--duration` seconds. Every customer
talks: answers after the bot's prompts, and one in three talks over a prompt (barge-in). The
customers' audio arrives as a real PBX sends it: messages of random even lengths (a
transcoding source, `--framing random`, the default) with each utterance's last one partial,
or exactly as Asterisk frames a file playback (`--framing asterisk`). `failed_calls` counts
the calls whose session ended in an error (it must be 0).
All latencies are measured on pbxsim's side of the wire, from frame arrival times:

- greeting: AudioSocket connected -> first bot frame (AMD's own time is reported apart);
- reply: end of the customer's speech -> first frame of the next bot prompt;
- processing: end of the trailing silence (the endpoint) -> first frame of the reply, as the
  daemon logs it on each reply turn;
- barge-in stop: the customer starts talking over a prompt -> that prompt's last frame, less
  the prompt's barge-in minimum (the speech it must hear before it stops; 0 when the bot
  stopped by then; the raw figure is reported too);
- late frames: bot frames more than 40 ms behind their 20 ms slot (one count per stall), and
  how many of them fell while pbxsim's own event loop was held up (it shares the cores); the
  daemon's own count of late clock ticks is reported apart (`daemon_late_ticks`), and so
  are the silence frames it sent inside prompts when synthesis fell behind (`starved_frames`).

    .venv/bin/python bench/calls.py --concurrency 8 --duration 60 --asr grammar \
        [--framing random|asterisk] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
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
from pbxsim import PbxSim, Scenario, SimConfig  # noqa: E402
from pbxsim.dialplan import DialplanStep, default_dialplan  # noqa: E402
from pbxsim.records import CallRecord  # noqa: E402
from store.db import Database  # noqa: E402
from store.settings import DatabaseSettings  # noqa: E402

AUDIO = ROOT / "outdial" / "demo_audio"
PHRASE_MAP = {"네": "yes", "아니요": "no", "아뇨": "no", "좋아요": "yes"}
# The script's default barge_in_min_ms: the daemon times speech from its onset, so the VAD's
# own minimum is inside it.
BARGE_DETECT_MS = 300
PROMPT_GAP_S = 0.2  # bot silence longer than this separates two prompts
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


def _scenario(framing: str) -> Scenario:
    yes, yes2 = str(AUDIO / "ko_yes_1.wav"), str(AUDIO / "ko_yes_2.wav")
    talk = {"wait_for_bot": True}
    tail = {"silence": 20}
    # People take different times to answer: without that, calls that start together stay
    # in lock-step and every answer of a wave lands on the CPU at the same instant.
    answers = {
        f"answers_{think}": {
            "weight": 2 / len(THINK_S),
            "steps": [talk, {"silence": think}, {"say": yes},
                      talk, {"silence": think}, {"say": yes2}, tail],
        }
        for think in THINK_S
    }  # fmt: skip
    return Scenario.model_validate(
        {
            "seed": 3,
            "media": {"framing": framing},
            # Calls placed together are answered over several seconds, as people pick up.
            "ring_seconds": 2.0,
            "ring_spread": RING_SPREAD_S,
            "outcomes": {"answer": 1.0},
            "customers": {
                **answers,
                "barges_in": {
                    "weight": 1,
                    # 1 s into the reply "Thanks. Order A-1 for a lamp is ready to ship to
                    # 1 Oak.", whose second sentence the answer interrupts.
                    "steps": [talk, {"say": yes}, {"barge_in_after": 1.0}, {"say": yes2}, tail],
                },
            },
        }
    )


def _bench_script(directory: Path, asr: str) -> None:
    """The shipped English script; in free mode without grammars, so Vosk decodes freely.
    Its A/B variant is left out: every call takes the same path, so the barging customers
    talk over the same prompt."""
    source = yaml.safe_load((ROOT / "scripts" / "order_confirmation_en.yaml").read_text())
    source.pop("variants", None)
    if asr == "free":
        for node in source["nodes"].values():
            node.pop("expect", None)
    (directory / "order_confirmation_en.yaml").write_text(
        yaml.safe_dump(source, allow_unicode=True)
    )


def _config(tmp: Path, db_url: str, ports: dict[str, int], concurrency: int) -> Path:
    config = {
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
    path = tmp / "outdial.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Measures:
    greeting: list[float] = field(default_factory=list)
    reply: list[float] = field(default_factory=list)
    bargein_stop: list[float] = field(default_factory=list)
    amd: list[float] = field(default_factory=list)
    late_frames: int = 0
    late_frames_pbxsim_stalled: int = 0
    bot_frames: int = 0


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


def _prompts(times: list[float]) -> list[list[float]]:
    runs: list[list[float]] = []
    for t in times:
        if runs and t - runs[-1][-1] <= PROMPT_GAP_S:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def _utterances(times: list[float]) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    for t in times:
        if spans and t - spans[-1][1] <= 0.1:
            spans[-1] = (spans[-1][0], t + 0.02)
        else:
            spans.append((t, t + 0.02))
    return spans


def _voiced_times(record: CallRecord) -> list[float]:
    """Times the customer's speech was on the wire, one per 20 ms of it (the WAVs are padded
    with silence, which must not count as talking). Messages are of any length: each 20 ms of
    audio is stamped with the arrival of the message that completed it."""
    audio = np.frombuffer(bytes(record.audio_sent), dtype=np.int16).astype(np.float32)
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((frames**2).mean(axis=1)) / 32768
    ends = np.cumsum(record.audio_sent_sizes) // 2  # samples sent by the end of each message
    sent_at = np.searchsorted(ends, (np.arange(len(frames)) + 1) * 160)
    times = np.asarray(record.audio_sent_times)[np.minimum(sent_at, len(ends) - 1)]
    return [float(t) for t, level in zip(times, rms, strict=True) if level > 0.01]


def measure(record: CallRecord, into: Measures, stalls: LoopStalls) -> None:
    bot = [f.t for f in record.bot_frames]
    into.bot_frames += len(bot)
    prompts = _prompts(bot)
    # A frame is late when it arrives more than 40 ms after its 20 ms slot, counted once per
    # stall (a gap over 60 ms), not again for every frame that follows it.
    late = [(a, b) for a, b in itertools.pairwise(bot) if 0.06 < b - a <= PROMPT_GAP_S]
    into.late_frames += len(late)
    into.late_frames_pbxsim_stalled += sum(1 for a, b in late if stalls.overlaps(a, b))
    if record.amd_seconds is not None:
        into.amd.append(record.amd_seconds)
    if record.media_connected_at and bot:
        into.greeting.append(bot[0] - record.media_connected_at[0])
    for index, (start, end) in enumerate(_utterances(_voiced_times(record))):
        talking_over = [run for run in prompts if run[0] < start < run[-1]]
        if talking_over:
            # Only the deliberate interruption counts: the barging customer's second answer.
            if record.customer == "barges_in" and index == 1:
                into.bargein_stop.append(talking_over[0][-1] - start)
            continue
        after = [t for t in bot if t > end]
        if after and not any(start < t <= end for t in bot):
            into.reply.append(after[0] - end)


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


async def run(concurrency: int, duration: float, asr: str, framing: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "scripts").mkdir()
        _bench_script(tmp / "scripts", asr)
        db = await Database.open(DatabaseSettings(), tmp / "db")
        try:
            return await _run(tmp, db, concurrency, duration, asr, framing)
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
    tmp: Path, db: Database, concurrency: int, duration: float, asr: str, framing: str
) -> dict:
    agi_port = _free_port()
    dialplan = default_dialplan(f"agi://127.0.0.1:{agi_port}/outdial")
    dialplan["orders_queue"] = [DialplanStep.model_validate(s) for s in ("Answer()", "Hangup()")]
    # Customers answer once the bot has been quiet for 0.7 s (not in a pause between sentences).
    sim_config = SimConfig(
        scenario=_scenario(framing), dialplan=dialplan, secret=SECRET, bot_silence_gap=0.7
    )
    stalls = LoopStalls()
    async with PbxSim(sim_config) as sim:
        await _seed(db, concurrency * max(2, int(duration / 15) + 2))
        ports = {"ami": sim.ami_port, "agi": agi_port, "metrics": _free_port()}
        config = _config(tmp, db.url, ports, concurrency)
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
            while time.monotonic() - started < duration:
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
    barge = [max(0.0, b - BARGE_DETECT_MS / 1000) for b in measures.bargein_stop]
    return {
        "asr": asr,
        "framing": framing,
        "concurrency": concurrency,
        "duration_s": duration,
        "calls": len(records),
        "failed_calls": failed_calls,
        "greeting_p50_ms": _pct(measures.greeting, 50),
        "greeting_p95_ms": _pct(measures.greeting, 95),
        "greeting_p99_ms": _pct(measures.greeting, 99),
        "reply_p50_ms": _pct(measures.reply, 50),
        "reply_p95_ms": _pct(measures.reply, 95),
        "reply_p99_ms": _pct(measures.reply, 99),
        "processing_p50_ms": _pct(processing, 50),
        "processing_p95_ms": _pct(processing, 95),
        "processing_p99_ms": _pct(processing, 99),
        "bargein_stop_p95_ms": _pct(barge, 95),
        "bargein_raw_p95_ms": _pct(measures.bargein_stop, 95),
        **{
            f"{stage}_p{q}_ms": _pct(values, q)
            for stage, values in stages.items()
            for q in (50, 95)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--asr", choices=("grammar", "free"), default="grammar")
    parser.add_argument(
        "--framing",
        choices=("random", "asterisk"),
        default="random",
        help="how customers' audio is framed (pbxsim media.framing)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = asyncio.run(run(args.concurrency, args.duration, args.asr, args.framing))
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
