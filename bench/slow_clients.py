"""Slow and idle clients against `outdial run`: 1,000 idle FastAGI and 1,000 idle HTTP
connections held open while real calls (pbxsim customers) and API requests go on.

    .venv/bin/python bench/slow_clients.py [--idle 1000] [--phase 45] [--calls 6] [--json]

Loopback only, bounded: the daemon runs as its own process (as systemd runs it, API on),
dialling pbxsim; the attacker holds `--idle` FastAGI and `--idle` HTTP connections from this
process for `--phase` seconds, opening a new one each time the daemon closes one, so the
count stays at `--idle` the whole time. The kinds, in turn:

- FastAGI `silent` (nothing sent: closed after agi.header_timeout_s) and `probe` (the AGI
  environment, then no reply to `GET VARIABLE`: closed after agi.command_timeout_s);
- HTTP `silent`, `partial_line` (`GET /v1/hea`) and `no_blank_line` (headers without the
  blank line): closed after api.header_timeout_s.

The caps are raised to 1,100 so that the daemon holds them all (with the default caps the
excess is refused at once: the tests show that). Measured: how long each idle connection
lived against its timeout, the daemon's file descriptors and open connections before, during
and after, and what the legitimate traffic saw before and during the flood: API request
latency (GET campaign stats, 10 a second, valid token) and, per call on pbxsim's side of
the wire, AGI start -> first bot frame (FastAGI setup, AudioSocket, greeting) and the
greeting alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.tokens import create_token  # noqa: E402
from bench.calls import (  # noqa: E402
    SECRET,
    _bench_script,
    _config,
    _free_port,
    _seed,
    _wait_ready,
)
from pbxsim import PbxSim, Scenario, SimConfig  # noqa: E402
from pbxsim.dialplan import DialplanStep, default_dialplan  # noqa: E402
from pbxsim.records import CallRecord  # noqa: E402
from store.db import Database  # noqa: E402
from store.settings import DatabaseSettings  # noqa: E402

# The daemon's timeouts under test (its defaults) and the caps raised to hold every idle one.
AGI_HEADER_S, AGI_COMMAND_S, API_HEADER_S = 5.0, 10.0, 10.0
CAP = 1_100
# A connection still open this long after its timeout counts as late (timers on a loaded box).
SLACK_S = 1.0
API_INTERVAL_S = 0.1
PROBE = b"agi_network: yes\nagi_channel: x\n\n"
FASTAGI_KINDS = {"silent": (b"", AGI_HEADER_S), "probe": (PROBE, AGI_COMMAND_S)}
HTTP_KINDS = {
    "silent": (b"", API_HEADER_S),
    "partial_line": (b"GET /v1/hea", API_HEADER_S),
    "no_blank_line": (b"GET /v1/health HTTP/1.1\r\nHost: api\r\n", API_HEADER_S),
}


def _short_calls() -> Scenario:
    """People who pick up, hear the greeting out and hang up: many calls set up per minute,
    which is what the figures here are about (conversations are bench/calls.py's)."""
    return Scenario.model_validate(
        {
            "seed": 5,
            "ring_seconds": 1.0,
            "ring_spread": 3.0,
            "outcomes": {"answer": 1.0},
            "customers": {
                "hangs_up": {"weight": 1, "steps": [{"wait_for_bot": True}, {"hangup": True}]}
            },
        }
    )


@dataclass
class Lived:
    """One idle connection: its kind, how long the daemon let it live, what it got."""

    listener: str
    kind: str
    seconds: float
    first_bytes: bytes


@dataclass
class Flood:
    """The attacker: `count` connections per listener, reopened as the daemon closes them."""

    agi_port: int
    api_port: int
    count: int
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ramped: asyncio.Event = field(default_factory=asyncio.Event)
    lived: list[Lived] = field(default_factory=list)
    failed_connects: int = 0
    _opened: int = 0

    async def run(self) -> None:
        holders = []
        for i in range(self.count):
            agi_kind = list(FASTAGI_KINDS)[i % len(FASTAGI_KINDS)]
            http_kind = list(HTTP_KINDS)[i % len(HTTP_KINDS)]
            holders.append(self._hold("fastagi", agi_kind, self.agi_port, FASTAGI_KINDS))
            holders.append(self._hold("http", http_kind, self.api_port, HTTP_KINDS))
        tasks = []
        for start in range(0, len(holders), 100):  # a ramp, not one SYN burst
            tasks += [asyncio.create_task(h) for h in holders[start : start + 100]]
            await asyncio.sleep(0.05)
        await asyncio.gather(*tasks)

    async def _hold(
        self, listener: str, kind: str, port: int, kinds: dict[str, tuple[bytes, float]]
    ) -> None:
        payload, timeout = kinds[kind]
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                self.failed_connects += 1
                await asyncio.sleep(0.1)
                continue
            opened = time.monotonic()
            self._opened += 1
            if self._opened == 2 * self.count:
                self.ramped.set()
            if payload:
                writer.write(payload)
            first = b""
            async with asyncio.timeout(timeout + 60):  # the bench stays bounded either way
                while chunk := await reader.read(4096):
                    first = first or chunk[:16]
            self.lived.append(Lived(listener, kind, time.monotonic() - opened, first))
            writer.close()


def _flood_process(
    agi_port: int,
    api_port: int,
    count: int,
    ramped: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
    out: multiprocessing.Queue,
) -> None:
    """The attacker in its own process, so its CPU is neither the daemon's nor pbxsim's."""

    async def attack() -> None:
        flood = Flood(agi_port, api_port, count)
        running = asyncio.create_task(flood.run())
        await flood.ramped.wait()
        ramped.set()
        await asyncio.to_thread(stop.wait)
        flood.stop.set()  # no new idle connection; the open ones live out their timeouts
        await running
        out.put((flood.lived, flood.failed_connects, time.process_time()))

    asyncio.run(attack())


@dataclass
class Sample:
    t: float
    fds: int
    agi_conns: int
    api_conns: int


async def _watch_daemon(
    pid: int, agi_port: int, api_port: int, into: list[Sample], stop: asyncio.Event
) -> None:
    daemon = psutil.Process(pid)
    while not stop.is_set():
        conns = await asyncio.to_thread(daemon.net_connections, "tcp")
        established = [c for c in conns if c.status == psutil.CONN_ESTABLISHED]
        into.append(
            Sample(
                time.monotonic(),
                daemon.num_fds(),
                sum(c.laddr.port == agi_port for c in established),
                sum(c.laddr.port == api_port for c in established),
            )
        )
        await asyncio.sleep(0.5)


async def _api_client(
    port: int, token: str, into: list[tuple[float, float, int]], stop: asyncio.Event
) -> None:
    """Steady legitimate API traffic: (time sent, latency s, status) per request."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers) as session:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                async with session.get("/v1/campaigns/bench/stats") as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0
            into.append((sent, time.monotonic() - sent, status))
            await asyncio.sleep(max(0.0, API_INTERVAL_S - (time.monotonic() - sent)))


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0] * 1000, 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 1)


def _latencies(values: list[float]) -> dict[str, object]:
    return {
        "n": len(values),
        "p50_ms": _pct(values, 50),
        "p95_ms": _pct(values, 95),
        "p99_ms": _pct(values, 99),
    }


def _call_figures(records: list[CallRecord], within: Callable[[float], bool]) -> dict:
    setup, greeting = [], []
    for record in records:
        if not record.bot_frames or not record.media_connected_at:
            continue
        if record.agi_started_at is None or not within(record.agi_started_at):
            continue
        first_frame = record.bot_frames[0].t
        setup.append(first_frame - record.agi_started_at)
        greeting.append(first_frame - record.media_connected_at[0])
    return {"agi_to_first_frame": _latencies(setup), "greeting": _latencies(greeting)}


def _idle_figures(lived: list[Lived], listener: str, kinds: dict[str, tuple[bytes, float]]) -> dict:
    figures: dict[str, object] = {}
    for kind, (_, timeout) in kinds.items():
        mine = [x for x in lived if x.listener == listener and x.kind == kind]
        refused = [x for x in mine if x.seconds < timeout / 2]
        held = [x.seconds for x in mine if x.seconds >= timeout / 2]
        figures[kind] = {
            "timeout_s": timeout,
            "connections": len(mine),
            "refused_at_once": len(refused),
            "closed_p50_s": round(statistics.median(held), 2) if held else None,
            "closed_max_s": round(max(held), 2) if held else None,
            "late": sum(s > timeout + SLACK_S for s in held),
        }
    return figures


async def _refusals(metrics_port: int) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{metrics_port}/metrics") as response,
    ):
        text = await response.text()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in ("outdial_fastagi_refused", "outdial_http_refused"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                where = sample.labels.get("listener", "fastagi")
                found[f"{where}:{sample.labels['reason']}"] = sample.value
    return found


def _daemon_config(path: Path, api_port: int) -> None:
    config = yaml.safe_load(path.read_text())
    config["agi"]["max_connections"] = CAP
    config["api"] = {"enabled": True, "port": api_port, "max_connections": CAP}
    path.write_text(yaml.safe_dump(config))


async def run(idle: int, phase: float, calls: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "scripts").mkdir()
        _bench_script(tmp / "scripts", "grammar")
        db = await Database.open(DatabaseSettings(), tmp / "db")
        try:
            return await _run(tmp, db, idle, phase, calls)
        finally:
            await db.close()


async def _run(tmp: Path, db: Database, idle: int, phase: float, calls: int) -> dict:
    agi_port, api_port = _free_port(), _free_port()
    dialplan = default_dialplan(f"agi://127.0.0.1:{agi_port}/outdial")
    dialplan["orders_queue"] = [DialplanStep.model_validate(s) for s in ("Answer()", "Hangup()")]
    sim_config = SimConfig(
        scenario=_short_calls(), dialplan=dialplan, secret=SECRET, bot_silence_gap=0.7
    )
    async with PbxSim(sim_config) as sim:
        await _seed(db, calls * (int(2 * phase / 4) + 10))  # calls last about 5-10 s
        async with db.pool.acquire() as conn:
            token = await create_token(conn, "bench", ["campaigns:read"])
        ports = {"ami": sim.ami_port, "agi": agi_port, "metrics": _free_port()}
        config = _config(tmp, db.url, ports, calls)
        _daemon_config(config, api_port)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp / "notify.sock"))
        notify.setblocking(False)
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(tmp / "notify.sock"),
            "OUTDIAL_AMI_SECRET": SECRET,
        }
        log_path = tmp / "daemon.log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                str(ROOT / ".venv" / "bin" / "outdial"), "--config", str(config), "run",
                env=env, stderr=log,
            )  # fmt: skip
        try:
            await _wait_ready(notify, proc)
            figures = await _phases(proc.pid, agi_port, api_port, token, idle, phase)
            figures["refusals"] = await _refusals(ports["metrics"])
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=120)
            notify.close()
        records = [r for r in sim.calls if r.done and r.media_connected_at]
        log_lines = len(log_path.read_text(errors="replace").splitlines())
    marks = figures.pop("marks")
    figures["calls"] = {
        "baseline": _call_figures(records, lambda t: marks["start"] <= t < marks["ramp"]),
        "flood": _call_figures(records, lambda t: marks["flood"] <= t < marks["calm"]),
    }
    figures["daemon_log_lines"] = log_lines
    return figures


async def _phases(pid: int, agi_port: int, api_port: int, token: str, idle: int, phase: float):
    stop_all = asyncio.Event()
    samples: list[Sample] = []
    requests: list[tuple[float, float, int]] = []
    watcher = asyncio.create_task(_watch_daemon(pid, agi_port, api_port, samples, stop_all))
    client = asyncio.create_task(_api_client(api_port, token, requests, stop_all))
    daemon = psutil.Process(pid)
    marks = {"start": time.monotonic()}
    cpu = {"start": _cpu_s(daemon)}
    await asyncio.sleep(phase)
    context = multiprocessing.get_context("spawn")
    ramped, stop, out = context.Event(), context.Event(), context.Queue()
    attacker = context.Process(
        target=_flood_process, args=(agi_port, api_port, idle, ramped, stop, out)
    )
    attacker.start()
    cpu["ramp"] = _cpu_s(daemon)
    marks["ramp"] = time.monotonic()
    if not await asyncio.to_thread(ramped.wait, 120):
        raise RuntimeError("the idle connections did not all open within 120 s")
    marks["flood"], cpu["flood"] = time.monotonic(), _cpu_s(daemon)
    await asyncio.sleep(phase)
    stop.set()
    marks["calm"], cpu["calm"] = time.monotonic(), _cpu_s(daemon)
    lived, failed_connects, attacker_cpu = await asyncio.to_thread(out.get, True, 120)
    await asyncio.to_thread(attacker.join, 30)
    marks["drained"] = time.monotonic()
    await asyncio.sleep(3.0)  # the daemon's side of the last closes
    marks["end"] = time.monotonic()
    stop_all.set()
    await asyncio.gather(watcher, client)

    def cpu_share(a: str, b: str) -> float:
        return round((cpu[b] - cpu[a]) / (marks[b] - marks[a]), 3)

    def during(a: str, b: str) -> list[Sample]:
        return [s for s in samples if marks[a] <= s.t < marks[b]]

    baseline, flooded, after = (
        during("start", "ramp"),
        during("flood", "calm"),
        during("drained", "end"),
    )
    api = {
        name: _latencies([lat for t, lat, status in requests if lo <= t < hi and status == 200])
        for name, lo, hi in (
            ("baseline", marks["start"], marks["ramp"]),
            ("flood", marks["flood"], marks["calm"]),
        )
    }
    return {
        "idle_per_listener": idle,
        "phase_s": phase,
        "fastagi_idle": _idle_figures(lived, "fastagi", FASTAGI_KINDS),
        "http_idle": _idle_figures(lived, "http", HTTP_KINDS),
        "failed_connects": failed_connects,
        "ramp_s": round(marks["flood"] - marks["ramp"], 2),
        "drain_s": round(marks["drained"] - marks["calm"], 1),
        # Share of one core the daemon used: legitimate traffic alone, then with the flood.
        "daemon_cpu_baseline": cpu_share("start", "ramp"),
        "daemon_cpu_flood": cpu_share("flood", "calm"),
        "attacker_cpu_s": round(attacker_cpu, 1),
        "fds": {
            "baseline_median": int(statistics.median(s.fds for s in baseline)),
            "baseline_max": max(s.fds for s in baseline),
            "flood_peak": max(s.fds for s in flooded),
            "after": after[-1].fds,
        },
        "held": {
            "fastagi_peak": max(s.agi_conns for s in flooded),
            "api_peak": max(s.api_conns for s in flooded),
            "fastagi_after": after[-1].agi_conns,
            "api_after": after[-1].api_conns,
        },
        "api_latency": api,
        "api_errors": sum(status != 200 for _, _, status in requests),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "marks": marks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1000, help="idle connections per listener")
    parser.add_argument("--phase", type=float, default=45.0, help="seconds before and in flood")
    parser.add_argument("--calls", type=int, default=6, help="live calls at once")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    result = asyncio.run(run(args.idle, args.phase, args.calls))
    for key, value in result.items():
        print(f"{key:>18}: {value}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
