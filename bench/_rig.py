"""What the soak and chaos runs share: `outdial run` as its own process (as systemd runs it)
against pbxsim and an embedded PostgreSQL that the harness can stop, restart and kill.

The load is bench/calls.py's customer mix in grammar mode. pbxsim can be restarted (its calls
end, its AMI, FastAGI and AudioSocket connections drop together); the records of every pbxsim
run are kept for the reconciliation and the wire-side latency figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.tokens import create_token
from bench.calls import (
    ROOT,
    SECRET,
    LoopStalls,
    Measures,
    _bench_script,
    _config,
    _free_port,
    _lead_fields,
    _pct,
    _scenario,
    _seed,
    _wait_ready,
    measure,
)
from outdial.logging import PoolRetryFilter
from pbxsim import PbxSim, SimConfig
from pbxsim.dialplan import DialplanStep, default_dialplan
from pbxsim.records import CallRecord
from store.db import Database
from store.settings import DatabaseSettings

_POOL_RETRIES = PoolRetryFilter()
# Keys hold the voice and every synthesis option (voice.tts), so runs can share the cache.
SHARED_TTS_CACHE = ROOT / ".cache" / "bench-tts"
MALLOC_AS_SHIPPED = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "1048576"}


@dataclass
class Rig:
    tmp: Path
    db: Database
    concurrency: int
    lease_s: float
    leads: int = 0  # seeded leads, each pinned to a kind of customer
    agi_port: int = field(default_factory=_free_port)
    metrics_port: int = field(default_factory=_free_port)
    api_port: int = field(default_factory=_free_port)
    jobs_every_s: float = 120.0
    drain_s: float | None = None  # dialer.drain_timeout_s; None: the daemon's default (30 s)
    spool_mount: Path | None = None  # a small tmpfs for the spool (the disk_full fault)
    sim: PbxSim | None = None
    ami_port: int = 0
    proc: asyncio.subprocess.Process | None = None
    past_records: list[CallRecord] = field(default_factory=list)
    stalls: LoopStalls = field(default_factory=LoopStalls)
    daemon_starts: int = 0
    # The `webhooks` config section (the daemon then sends the outbox to a CRM), and its
    # signing secret, which goes to the daemon through its environment.
    webhooks: dict[str, object] | None = None
    webhook_secret: str | None = None

    @property
    def records(self) -> list[CallRecord]:
        """Every call pbxsim placed, over all its runs."""
        return self.past_records + (self.sim.calls if self.sim is not None else [])

    @property
    def log_path(self) -> Path:
        return self.tmp / "daemon.log"

    # -- pbxsim ---------------------------------------------------------------------------------
    def _sim_config(self) -> SimConfig:
        dialplan = default_dialplan(f"agi://127.0.0.1:{self.agi_port}/outdial")
        dialplan["orders_queue"] = [
            DialplanStep.model_validate(s) for s in ("Answer()", "Hangup()")
        ]
        return SimConfig(
            ami_port=self.ami_port,
            scenario=_scenario("random", self.tmp, self.leads),
            dialplan=dialplan,
            secret=SECRET,
            bot_silence_gap=0.7,
            record_audio=True,
        )

    async def start_pbx(self) -> None:
        self.sim = PbxSim(self._sim_config())
        await self.sim.start()
        self.ami_port = self.sim.ami_port

    async def stop_pbx(self) -> None:
        """The PBX goes away: its calls end, every connection to the daemon drops."""
        assert self.sim is not None
        await self.sim.stop()
        self.past_records += self.sim.calls
        self.sim = None

    def drop_ami(self) -> None:
        """The AMI connection drops alone (as on `manager reload`); calls go on."""
        assert self.sim is not None
        for session in list(self.sim.ami_sessions):
            session.close()

    # -- the spool's disk ------------------------------------------------------------------------
    def mount_spool_disk(self, size: str = "4m") -> None:
        """A small tmpfs for the daemon's spool (needs root: `mount -t tmpfs`)."""
        mount = self.tmp / "spool-disk"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                       check=True)  # fmt: skip
        self.spool_mount = mount

    def fill_spool_disk(self) -> None:
        """Fill the spool's tmpfs to the last byte."""
        assert self.spool_mount is not None
        with (self.spool_mount / "filler").open("wb", buffering=0) as filler:
            for chunk in (65536, 1):  # big writes until one fails, then byte by byte
                with contextlib.suppress(OSError):
                    while True:
                        filler.write(b"\0" * chunk)

    def free_spool_disk(self) -> None:
        assert self.spool_mount is not None
        (self.spool_mount / "filler").unlink()

    # -- the daemon -----------------------------------------------------------------------------
    def write_config(self) -> Path:
        ports = {"ami": self.ami_port, "agi": self.agi_port, "metrics": self.metrics_port}
        path = _config(self.tmp, self.db.url, ports, self.concurrency)
        config = yaml.safe_load(path.read_text())
        config["dialer"]["lease_s"] = self.lease_s  # owner: hostname and pid, new per start
        if self.drain_s is not None:
            config["dialer"]["drain_timeout_s"] = self.drain_s
        config["api"] = {"enabled": True, "port": self.api_port}
        # The prompts rendered by an earlier run: a first start then costs what a restart
        # costs (the daemon's state directory keeps this cache across its restarts anyway).
        config["tts"] = {"cache_dir": str(SHARED_TTS_CACHE)}
        if self.spool_mount is not None:
            config["database"]["spool_dir"] = str(self.spool_mount)
        # The hourly jobs (retention purge, A/B retirement) every few minutes instead.
        config["privacy"] = {"purge_interval_s": self.jobs_every_s}
        config["analytics"] = {"ab": {"retire_interval_s": self.jobs_every_s}}
        if self.webhooks is not None:
            config["webhooks"] = self.webhooks
        path.write_text(yaml.safe_dump(config))
        return path

    async def add_leads_through_the_api(self, every_s: float, stop: asyncio.Event) -> Counter:
        """A CRM pushing one new lead every `every_s` seconds; counts the answers' statuses."""
        async with self.db.pool.acquire() as conn:
            token = await create_token(conn, "bench-crm", ["leads:write"])
        statuses: Counter[int] = Counter()
        headers = {"Authorization": f"Bearer {token}"}
        url = f"http://127.0.0.1:{self.api_port}/v1/campaigns/bench/leads"
        async with aiohttp.ClientSession(headers=headers) as session:
            for i in itertools.count(1):
                if stop.is_set():
                    break
                lead = {"phone": f"+1202556{i:04d}", "fields": _lead_fields(10_000 + i)}
                try:
                    async with session.put(f"{url}/crm-{i}", json=lead) as response:
                        statuses[response.status] += 1
                except aiohttp.ClientError:
                    statuses[0] += 1  # the daemon was down (chaos) or refused the connection
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
        return statuses

    async def start_daemon(self) -> None:
        config = self.tmp / "outdial.yaml"
        notify_path = self.tmp / f"notify-{self.daemon_starts}.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.setblocking(False)
        # As the shipped systemd unit runs it (deploy/systemd/outdial.service): two malloc
        # arenas, and blocks of 1 MB and more mapped on their own.
        env = {**MALLOC_AS_SHIPPED, **os.environ, "NOTIFY_SOCKET": str(notify_path),
               "OUTDIAL_AMI_SECRET": SECRET}  # fmt: skip
        if self.webhook_secret is not None:
            env["OUTDIAL_WEBHOOK_SECRET"] = self.webhook_secret
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                str(ROOT / ".venv" / "bin" / "outdial"), "--config", str(config), "run",
                env=env, stderr=log,
            )  # fmt: skip
        try:
            await _wait_ready(notify, self.proc)
        finally:
            notify.close()
        self.daemon_starts += 1

    async def stop_daemon(self, sig: int = signal.SIGTERM, timeout: float = 180) -> int:  # noqa: ASYNC109
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        self.proc = None
        return code

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def metrics(self) -> dict[str, float]:
        """The daemon's /metrics, one value per sample (labelled samples summed by name)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response,
        ):
            text = await response.text()
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
        return values

    async def ready(self) -> bool:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{self.metrics_port}/readyz") as response,
            ):
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def until_ready(self, limit_s: float = 300) -> None:
        """Until /readyz answers 200 (full service: database, AMI, dialer, models)."""
        started = time.monotonic()
        while time.monotonic() - started < limit_s:
            if await self.ready():
                return
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the daemon was not ready {limit_s:.0f} s after the fault ended")

    def process_sample(self) -> dict[str, float]:
        daemon = psutil.Process(self.pid)
        return {
            "rss_mb": round(daemon.memory_info().rss / 2**20, 1),
            "fds": daemon.num_fds(),
            "threads": daemon.num_threads(),
        }


def logged_errors(text: str) -> list[str]:
    """Each traceback in the daemon's log: the log line it follows, then what was raised."""
    lines = text.splitlines()
    errors = []
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            rest = lines[index + 1 :]
            raised = next((x for x in rest if x and not x.startswith(" ")), "?")
            logged = lines[index - 1][24:] if index else ""  # past the timestamp
            errors.append(f"{logged[:120]} -> {raised[:160]}")
    return errors


def warnings_by_logger(text: str) -> dict[str, int]:
    """WARNING lines in the daemon's log, by logger ("... WARNING dialer.ami: ...")."""
    found = re.findall(r"\bWARNING (\S+):", text)
    return dict(Counter(found).most_common())


def warning_examples(text: str) -> dict[str, str]:
    """The first WARNING line of each logger in the daemon's log (what the counts are of)."""
    examples: dict[str, str] = {}
    for logger, message in re.findall(r"\bWARNING (\S+): (.*)", text):
        examples.setdefault(logger, message[:160])
    return examples


def wire_latency(records: list[CallRecord], since: float, until: float, stalls: LoopStalls):
    """Greeting and response p95 on pbxsim's side of the wire (pbxsim.wire), for calls whose
    media began in [since, until)."""
    measures = Measures()
    for record in records:
        if record.media_connected_at and since <= record.media_connected_at[0] < until:
            measure(record, measures, stalls)
    return {
        "calls": sum(
            1 for r in records if r.media_connected_at and since <= r.media_connected_at[0] < until
        ),
        "greeting_p95_ms": _pct(measures.greeting, 95),
        "response_p95_ms": _pct(measures.responses, 95),
    }


@asynccontextmanager
async def rig(concurrency: int, leads: int, lease_s: float = 300.0) -> AsyncIterator[Rig]:
    """A scratch directory, an embedded PostgreSQL with `leads` leads, pbxsim and the daemon's
    config (not started)."""
    # The harness's own pool (seeding, reconciliation) sees the same outages as the daemon's.
    logging.getLogger("asyncpg.pool").addFilter(_POOL_RETRIES)
    with tempfile.TemporaryDirectory(prefix="bench-rig-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "scripts").mkdir()
        _bench_script(tmp / "scripts", "grammar")
        db = await Database.open(DatabaseSettings(), tmp / "db")
        setup = Rig(tmp, db, concurrency, lease_s, leads)
        try:
            await _seed(db, leads)
            await setup.start_pbx()
            setup.write_config()
            setup.stalls.start()
            yield setup
        finally:
            setup.stalls.stop()
            if setup.proc is not None and setup.proc.returncode is None:
                setup.proc.kill()
                await setup.proc.wait()
            if setup.sim is not None:
                await setup.sim.stop()
            await db.close()
            if setup.spool_mount is not None:
                await asyncio.to_thread(subprocess.run, ["umount", str(setup.spool_mount)])
