"""Which installed pack serves a script (`choose_pack`), and every way it says none can."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice.packs import (
    PackOffer,
    PackRequest,
    PackSpec,
    PackUnavailable,
    choose_pack,
    installed_pack,
    installed_packs,
)


def _spec(name: str, language: str, voice: str) -> PackSpec:
    root = Path("/models") / name
    return PackSpec(
        name=name,
        language=language,
        vosk_dir=root / "vosk",
        voice_model=root / "piper" / f"{voice}.onnx",
        voice_config=root / "piper" / f"{voice}.onnx.json",
        description=name,
        asr_name=f"vosk-{name}",
        asr_language=language,
    )


PACKAGED = _spec("packaged", "en", "en_US-joe-medium")
EN = _spec("en", "en", "en_US-lessac-medium")
EN_GB = _spec("en-gb", "en", "en_GB-alan-medium")
ZH = _spec("zh", "zh", "zh_CN-huayan-medium")
ZH_LARGE = _spec("zh-large", "zh", "zh_CN-huayan-medium")
OFFERS = [
    PackOffer("en", "en", "en_US-lessac-medium"),
    PackOffer("zh", "zh", "zh_CN-huayan-medium"),
    PackOffer("en-gb", "en", "en_GB-alan-medium"),
]


def _choose(available: list[PackSpec], **asked: str) -> PackSpec:
    language = asked.pop("language")
    return choose_pack(PackRequest("s", language, **asked), available, OFFERS)


def _refusal(available: list[PackSpec], **asked: str) -> str:
    with pytest.raises(PackUnavailable) as caught:
        _choose(available, **asked)
    return str(caught.value)


def test_the_language_pack_is_chosen_and_an_installed_one_beats_the_packaged() -> None:
    assert _choose([PACKAGED], language="en") is PACKAGED
    assert _choose([EN_GB, EN, PACKAGED], language="en") is EN  # the one named after it
    assert _choose([EN_GB, PACKAGED], language="en") is EN_GB  # an installed one
    assert _choose([ZH_LARGE, ZH, EN], language="zh") is ZH


def test_pack_and_voice_pick_among_packs_of_one_language() -> None:
    assert _choose([ZH, ZH_LARGE], language="zh", pack="zh-large") is ZH_LARGE
    assert _choose([EN, EN_GB, PACKAGED], language="en", voice="en_GB-alan-medium") is EN_GB
    assert _choose([EN, PACKAGED], language="en", voice="en_US-joe-medium") is PACKAGED
    assert _choose([ZH_LARGE, ZH], language="zh", pack="zh", voice="zh_CN-huayan-medium") is ZH


def test_each_refusal_names_the_script_the_language_and_the_remedy() -> None:
    assert _refusal([EN, PACKAGED], language="zh") == (
        "script 's' (language zh) cannot be served: no zh language pack is installed; "
        "install it with `outdial models install zh`"
    )
    assert _refusal([EN], language="en", voice="en_GB-alan-medium") == (
        "script 's' (language en, voice en_GB-alan-medium) cannot be served: no installed en "
        "pack has voice en_GB-alan-medium; install it with `outdial models install en-gb`"
    )
    assert _refusal([ZH], language="zh", pack="zh-large") == (
        "script 's' (language zh, pack zh-large) cannot be served: language pack zh-large is "
        "not installed; no pack in the catalogue offers zh-large: add one to "
        "models.catalogue (see `outdial models list`)"
    )
    assert _refusal([EN, ZH], language="en", pack="zh") == (
        "script 's' (language en, pack zh) cannot be served: pack zh speaks zh; "
        "name a pack of language en in `pack:` (see `outdial models list`)"
    )
    assert _refusal([ZH, ZH_LARGE], language="zh", pack="zh", voice="zh_CN-other") == (
        "script 's' (language zh, pack zh, voice zh_CN-other) cannot be served: pack zh has "
        "voice zh_CN-huayan-medium; drop `voice:` or name the pack that has it"
    )
    assert "no pack in the catalogue offers language ko" in _refusal([EN], language="ko")


def test_a_broken_pack_is_skipped_and_its_manifest_error_is_clear(tmp_path: Path) -> None:
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "pack.json").write_text("{not json")
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "pack.json").write_text(
        '{"files": {}, "voice_file": "v.onnx", "voice_config_file": "v.onnx.json", '
        '"language": "en", "sources": {"vosk": {"path": "/m/vosk-model-small-en-us-0.15"}}}'
    )
    (tmp_path / ".install-zh-123").mkdir()  # an install under way is no pack
    assert [p.name for p in installed_packs(tmp_path)] == ["en"]
    assert installed_pack(tmp_path, "en").asr_name == "vosk-model-small-en-us-0.15"
    with pytest.raises(ValueError, match=r"zh/pack.json: unreadable pack manifest"):
        installed_pack(tmp_path, "zh")
    with pytest.raises(ValueError, match=r"language pack 'yue' is not installed in"):
        installed_pack(tmp_path, "yue")
