"""The daemon's FastAGI listener against hostile clients (issue 23, finding 1): the call
service as the daemon builds it, its reply timeout and its connection cap from max_calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from agi.callstore import CallStore
from agi.service import CallService, ScriptSource
from agi.settings import AgiSettings, AudioSocketSettings
from store.kept import KeptWrites
from store.turns import TurnWriter
from tests.agi.conftest import call_services
from tests.dialer.helpers import until
from voice.asr import AsrEngine
from voice.tts import TtsEngine

# What the probe sent: a valid-looking AGI environment and nothing after it.
PROBE = b"agi_network: yes\nagi_channel: x\n\n"


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("outdial_fastagi_refused_total", {"reason": reason}) or 0.0


@pytest.fixture
async def service(
    engines: tuple[AsrEngine, TtsEngine], db_pool: asyncpg.Pool, tmp_path: Path
) -> AsyncIterator[CallService]:
    turns = TurnWriter(db_pool, tmp_path / "spool")
    await turns.start()

    async def no_variant(runtime: object) -> None:
        return None

    service = CallService(
        AgiSettings(port=0, command_timeout_s=0.5, header_timeout_s=60),
        AudioSocketSettings(port=0),
        call_services(engines, max_calls=2),
        ScriptSource(lambda name: None),
        CallStore(db_pool, KeptWrites.create(db_pool, tmp_path / "spool")),
        turns,
        no_variant,
    )
    await service.start()
    yield service
    await service.drain(1)
    await turns.close()


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(10):
        while await reader.read(4096):
            pass
    return True


async def test_the_probe_no_longer_holds_a_connection(service: CallService) -> None:
    before = refused("reply_timeout")
    reader, writer = await _open(service.agi_port)
    writer.write(PROBE)
    assert await reader.readline() == b"GET VARIABLE OUTDIAL_CALL_ID\n"
    # ...and then the client says nothing: the daemon closes it after command_timeout_s.
    assert await _closed(reader)
    writer.close()
    assert refused("reply_timeout") == before + 1
    async with asyncio.timeout(10):
        await until(lambda: service.fastagi.connections == 0)


async def test_the_connection_cap_comes_from_max_calls(service: CallService) -> None:
    """max_calls 2 -> 2 x 2 + 16 = 20 connections; the 21st is closed at once, counted."""
    cap = 20
    before = refused("capacity")
    held = [await _open(service.agi_port) for _ in range(cap)]
    async with asyncio.timeout(10):
        await until(lambda: service.fastagi.connections == cap)
    reader, writer = await _open(service.agi_port)
    assert await _closed(reader)
    writer.close()
    assert refused("capacity") == before + 1
    assert REGISTRY.get_sample_value("outdial_fastagi_connections") == cap
    for _, held_writer in held:
        held_writer.close()
    async with asyncio.timeout(10):
        await until(lambda: service.fastagi.connections == 0)
