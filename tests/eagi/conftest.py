"""EAGI-path fixtures: the live call stack of tests/agi, pbxsim forking the real bridge."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbxsim import CallRecord, PbxSim, Scenario, SimConfig
from pbxsim.dialplan import Dialplan, DialplanStep
from tests.agi.conftest import REPO, LiveStack, engines, open_live_stack, originate  # noqa: F401
from voice.asr import AsrEngine
from voice.tts import TtsEngine

SCRIPT = "order_confirmation_en.yaml"
# The console script `pip install -e .` puts next to this interpreter.
BRIDGE = Path(sys.executable).with_name("outdial-eagi")


@pytest.fixture(scope="session")
def nlu_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained classifiers shared by this directory's tests (keyed by the script's content)."""
    return tmp_path_factory.mktemp("eagi-nlu")


@pytest.fixture
async def eagi_stack(
    engines: tuple[AsrEngine, TtsEngine],  # noqa: F811
    pg_url: str,
    tmp_path: Path,
    nlu_cache: Path,
) -> AsyncIterator[LiveStack]:
    """tests/agi's live stack (real engines and PostgreSQL), with the English script only."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(REPO / "scripts" / SCRIPT, scripts / SCRIPT)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "nlu").symlink_to(nlu_cache)
    async with open_live_stack(engines, pg_url, scripts, tmp_path / "work") as stack:
        yield stack


def eagi_dialplan(port: int, sounds: Path, *extra: str) -> Dialplan:
    """`bot-eagi` runs the bridge; `outdial-fallback` marks that the call fell back."""
    args = ",".join((str(BRIDGE), f"--server=127.0.0.1:{port}", f"--sounds-dir={sounds}", *extra))
    raw = {
        "bot-eagi": ["Answer()", f"EAGI({args})", "Verbose(1,after eagi)", "Hangup()"],
        "outdial-fallback": ["Set(FELL_BACK=yes)", "Hangup()"],
        "orders_queue": ["Answer()", "Verbose(1,agent ${OUTDIAL_TRANSFER_REASON})", "Hangup()"],
    }
    return {ctx: [DialplanStep.model_validate(s) for s in steps] for ctx, steps in raw.items()}


def one_customer(steps: list[dict[str, object]], number: str = "5551000") -> Scenario:
    return Scenario.model_validate(
        {
            "seed": 1,
            "outcomes": {"answer": 1.0},
            "numbers": {number: {"customer": "c", "outcome": "answer"}},
            "customers": {"c": {"steps": steps}},
        }
    )


async def run_calls(config: SimConfig, calls: list[tuple[str, str]]) -> dict[str, CallRecord]:
    async with PbxSim(config) as sim:
        await originate(sim.ami_port, calls, context="bot-eagi")
        records = await sim.wait_calls_done(len(calls), timeout=120)
    return {r.call_id or "": r for r in records}


def bridges_running(marker: Path) -> list[int]:
    """Pids of processes whose command line mentions `marker` (each test's own sounds dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(marker).encode() in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def closed_port() -> int:
    """A local port with nothing listening (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
