"""A live call stack for end-to-end tests: real Vosk, Piper, spaCy, librosa and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from panoramisk import Manager

from agi.callstore import CallStore
from agi.catalog import ScriptCatalog
from agi.runtime import CallServices, CallSettings
from agi.service import CallService, ScriptSource, loopback_call_service
from agi.settings import SessionSettings
from compliance.settings import ComplianceSettings
from compliance.words import default_word_filter
from dialer.campaigns import CampaignSettings, create_campaign
from emotion.settings import EmotionSettings
from nlu.settings import NluSettings
from store.db import create_pool
from store.kept import KeptWrites
from store.settings import DatabaseSettings
from store.turns import TurnWriter
from tests.dialer.helpers import midday_timezone
from voice.asr import AsrEngine
from voice.packs import PackLoader, VoicePack, choose_pack, packaged_pack
from voice.settings import AsrSettings, TtsSettings
from voice.tts import TtsEngine

REPO = Path(__file__).resolve().parents[2]
AUDIO = REPO / "tests" / "fixtures" / "audio"
# Korean answers the grammar hears, and a lead of the English order-confirmation script.
YES = str(AUDIO / "ko_yes_1.wav")
YES2 = str(AUDIO / "ko_yes_2.wav")
NO = str(AUDIO / "ko_no_1.wav")
ORDER_FIELDS = {
    "customer_name": "Alex",
    "order_number": "A-1001",
    "item": "a blue kettle",
    "address": "12 Oak Street",
}
# The demo language pack: the Korean ASR hears these, the English script means this.
PHRASE_MAP = {
    "네": "yes",
    "아니요": "no",
    "아뇨": "no",
    "좋아요": "yes",
    "상담원 연결": "let me talk to an agent",
}


@pytest.fixture(scope="session")
async def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[AsrEngine, TtsEngine]:
    asr = await AsrEngine.load(AsrSettings())
    tts = await TtsEngine.load(TtsSettings(cache_dir=tmp_path_factory.mktemp("tts")))
    return asr, tts


def packaged_only(asr: AsrEngine, tts: TtsEngine) -> PackLoader:
    """The packs of a plain install, already loaded: the packaged models serve English."""
    spec = packaged_pack(AsrSettings(), TtsSettings())
    return PackLoader(
        lambda request: choose_pack(request, [spec], []),
        AsrSettings(),
        TtsSettings(),
        lambda _: 1,
        loaded=[VoicePack(spec, asr, tts)],
    )


def call_services(engines: tuple[AsrEngine, TtsEngine], **session: object) -> CallServices:
    settings = CallSettings(
        session=SessionSettings(phrase_map={"en": PHRASE_MAP}, **session),
        emotion=EmotionSettings(),
        compliance=ComplianceSettings(),
        nlu=NluSettings(),
    )
    return CallServices(
        packs=packaged_only(*engines), word_filter=default_word_filter(), settings=settings
    )


@dataclass
class LiveStack:
    service: CallService
    catalog: ScriptCatalog
    pool: asyncpg.Pool
    turns: TurnWriter

    async def add_call(
        self,
        call_id: str,
        phone: str,
        fields: dict[str, object],
        script: str = "order_confirmation_en",
    ) -> int:
        """A campaign lead with an attempt row, as the dialer leaves it before Originate (the
        campaign `e2e` runs the English script, `e2e-<script>` any other)."""
        name = "e2e" if script == "order_confirmation_en" else f"e2e-{script}"
        async with self.pool.acquire() as conn:
            campaign = await conn.fetchval(
                """INSERT INTO campaigns (name, script_name) VALUES ($1, $2)
                   ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id""",
                name,
                script,
            )
            lead = await conn.fetchval(
                """INSERT INTO leads (campaign_id, phone_e164, timezone, fields)
                   VALUES ($1, $2, 'America/New_York', $3) RETURNING id""",
                campaign,
                phone,
                fields,
            )
            await conn.execute(
                """INSERT INTO call_attempts (call_id, lead_id, campaign_id, trunk, owner)
                   VALUES ($1, $2, $3, 'sim', 'test')""",
                call_id,
                lead,
                campaign,
            )
        return lead


async def order_campaign_lead(
    pool: asyncpg.Pool, campaign: str, script: str, phone: str, settings: CampaignSettings
) -> int:
    """A campaign for the dialer to work, with one lead of the order script; the lead's id."""
    async with pool.acquire() as conn:
        created = await create_campaign(conn, campaign, script, settings)
        return await conn.fetchval(
            """INSERT INTO leads (campaign_id, phone_e164, timezone, fields)
               VALUES ($1, $2, $3, $4) RETURNING id""",
            created.id,
            phone,
            midday_timezone(),
            ORDER_FIELDS,
        )


@contextlib.asynccontextmanager
async def open_live_stack(
    engines: tuple[AsrEngine, TtsEngine],
    pg_url: str,
    scripts: Path,
    work: Path,
    turns: TurnWriter | None = None,
    services: CallServices | None = None,
) -> AsyncIterator[LiveStack]:
    """The call service over `scripts` with a real PostgreSQL; `work` holds caches and spool
    (or `turns` writes the turn log); `services` default to the packaged models'."""
    pool = await create_pool(pg_url, DatabaseSettings())
    services = services or call_services(engines)
    catalog = ScriptCatalog(scripts, services, work / "nlu", pool)
    await catalog.reload()
    turns = turns or TurnWriter(pool, work / "spool")
    await turns.start()
    kept = KeptWrites.create(pool, work / "spool")
    await kept.start()
    service = await loopback_call_service(
        services, ScriptSource(catalog.get), CallStore(pool, kept), turns
    )
    try:
        yield LiveStack(service, catalog, pool, turns)
    finally:
        await service.drain(5)
        await turns.close()
        await kept.close()
        await pool.close()


@pytest.fixture(scope="session")
def trained_nlu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained classifiers shared by the live stacks of a run (keyed by script content)."""
    return tmp_path_factory.mktemp("agi-nlu")


@pytest.fixture
async def live_stack(
    engines: tuple[AsrEngine, TtsEngine], pg_url: str, tmp_path: Path, trained_nlu: Path
) -> AsyncIterator[LiveStack]:
    """Every shipped script, copied so a test may edit it."""
    scripts = tmp_path / "scripts"
    shutil.copytree(REPO / "scripts", scripts)
    (tmp_path / "nlu").symlink_to(trained_nlu)
    async with open_live_stack(engines, pg_url, scripts, tmp_path) as stack:
        yield stack


async def originate(ami_port: int, calls: list[tuple[str, str]], context: str = "bot-agi") -> None:
    """Originate `(number, call_id)` pairs into `context` over AMI, as the dialer does."""
    manager = Manager(host="127.0.0.1", port=ami_port, username="outdial", secret="s3cret")
    await manager.connect()
    try:
        replies = await asyncio.gather(
            *(
                manager.send_action(
                    {
                        "Action": "Originate",
                        "Channel": f"Local/{number}@customers",
                        "Context": context,
                        "Exten": "s",
                        "Priority": "1",
                        "Async": "true",
                        "Timeout": "20000",
                        "Variable": f"OUTDIAL_CALL_ID={call_id}",
                    }
                )
                for number, call_id in calls
            )
        )
        for reply in replies:
            # panoramisk returns the Response and the OriginateResponse event for Async.
            first = reply[0] if isinstance(reply, list) else reply
            assert first.Response == "Success", reply
    finally:
        manager.close()
