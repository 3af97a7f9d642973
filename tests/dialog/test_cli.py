"""`outdial script validate|chat` through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from outdial.cli import app as root_app
from outdial.commands.script import app
from outdial.errors import UserError
from tests.dialog.conftest import MINIMAL, SCRIPTS

runner = CliRunner()
ZH = str(SCRIPTS / "payment_reminder_zh.yaml")
EN = str(SCRIPTS / "order_confirmation_en.yaml")


def test_validate_ok() -> None:
    result = runner.invoke(app, ["validate", "--skip-packs", ZH, EN])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "OK: 2 script(s) valid"


def test_validate_reports_file_line_col_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("      deny: bye", "      deny: goodbye"))
    result = runner.invoke(app, ["validate", "--skip-packs", ZH, str(bad)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{bad}:19:7: undefined node 'goodbye'; did you mean 'bye'?"
    ]


def test_validate_refuses_a_script_whose_language_pack_is_not_installed(tmp_path: Path) -> None:
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path}\n")
    result = runner.invoke(root_app, ["-c", str(config), "script", "validate", ZH, EN])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{ZH}: script 'payment_reminder_zh' (language zh, voice zh_CN-huayan-medium) cannot be "
        "served: no installed zh pack has voice zh_CN-huayan-medium; "
        "install it with `outdial models install zh`"
    ]
    # Once a zh pack with that voice is installed (its manifest is what is read), it passes.
    pack = tmp_path / "models" / "zh"
    pack.mkdir(parents=True)
    (pack / "pack.json").write_text(
        '{"files": {}, "voice_file": "zh_CN-huayan-medium.onnx", '
        '"voice_config_file": "zh_CN-huayan-medium.onnx.json"}'
    )
    result = runner.invoke(root_app, ["-c", str(config), "script", "validate", ZH, EN])
    assert result.exit_code == 0, result.output


def test_validate_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "none.yaml")])
    assert result.exit_code == 1 and "none.yaml:1:1: cannot read script" in result.output


def chat(args: list[str], stdin: str, tmp_path: Path):  # noqa: ANN201
    return runner.invoke(app, ["chat", *args, "--cache-dir", str(tmp_path)], input=stdin)


def test_chat_rehearses_the_zh_script(tmp_path: Path) -> None:
    stdin = "是我\n我要投诉你们\n"
    result = chat([ZH, "--var", "customer_name=张先生", "--var", "amount=3500"], stdin, tmp_path)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "bot (confirm_identity): 请问您是张先生本人吗？" in out
    assert "intent: affirm" in out and "应还3500元" in out
    assert "intent: complaint" in out and "transfer to collections_queue" in out


def test_chat_shows_compliance_hits_dtmf_and_commands(tmp_path: Path) -> None:
    fields = [
        "--var",
        "customer_name=Ann",
        "--var",
        "order_number=A1",
        "--var",
        "item=lamp",
        "--var",
        "address=1 Main St",
    ]
    stdin = "/emotion 2\n/dtmf x\n/bogus\nyou idiot\n/dtmf 1\n/dtmf 1\n"
    result = chat([EN, *fields], stdin, tmp_path)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "/emotion needs a score between 0 and 1" in out
    assert "/dtmf needs one digit" in out
    assert "unknown command /bogus" in out
    assert "compliance (customer, node confirm_identity): insults 'idiot' -> flag" in out
    assert "end: completed / confirmed (success: True)" in out


def test_chat_bad_var_and_bad_script(tmp_path: Path) -> None:
    result = chat([ZH, "--var", "customer_name"], "", tmp_path)
    assert isinstance(result.exception, UserError)
    assert "--var needs NAME=VALUE" in str(result.exception)
    result = chat([ZH], "", tmp_path)
    assert "missing required variables: amount, customer_name" in str(result.exception)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [")
    result = chat([str(bad)], "", tmp_path)
    assert isinstance(result.exception, UserError) and "does not validate" in str(result.exception)


def test_chat_unknown_variant(tmp_path: Path) -> None:
    args = [ZH, "--var", "customer_name=a", "--var", "amount=1", "--variant", "nope"]
    result = chat(args, "", tmp_path)
    assert "unknown variant 'nope'" in str(result.exception)


def test_chat_caches_intents_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OUTDIAL_CONFIG", raising=False)
    monkeypatch.setenv("OUTDIAL_STATE_DIR", str(tmp_path / "state"))
    # Examples no other test trains on: the classifier is trained here, not taken from memory.
    script = tmp_path / "s.yaml"
    script.write_text(
        MINIMAL.replace(
            "start: ask\n", f"start: ask\nintents:\n  affirm:\n    examples: [{tmp_path.name}]\n"
        )
    )
    result = CliRunner().invoke(
        root_app, ["script", "chat", str(script), "--var", "customer_name=Ann"], input="/hangup\n"
    )
    assert result.exit_code == 0, result.output
    assert any((tmp_path / "state" / "nlu-cache").iterdir())
    assert not (tmp_path / ".outdial").exists()
