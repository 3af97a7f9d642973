"""`outdial script test`: every shipped script's cases pass (this is how CI runs them), a
broken script edit fails at the step's FILE:LINE, and a bad case file is reported at
FILE:LINE:COL. Real spaCy classifiers, trained once per session and script."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outdial.cli import app
from outdial.errors import UserError
from tests.dialog.conftest import SCRIPTS

runner = CliRunner()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlu")


def run(cache: Path, *paths: Path) -> tuple[int, str]:
    """Exit code and output, as `outdial` would give them (a UserError: one line, exit 1)."""
    result = runner.invoke(app, ["script", "test", *map(str, paths), "--cache-dir", str(cache)])
    if isinstance(result.exception, UserError):
        return 1, str(result.exception)
    return result.exit_code, result.output


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """The shipped scripts and their cases, copied so a test may break one."""
    return Path(shutil.copytree(SCRIPTS, tmp_path / "scripts"))


LIBRARY = SCRIPTS / "library"


@pytest.mark.parametrize("directory", [SCRIPTS, LIBRARY], ids=["shipped", "library"])
def test_every_shipped_script_has_cases_and_they_all_pass(cache: Path, directory: Path) -> None:
    code, output = run(cache, directory)
    assert code == 0, output
    assert "(no cases)" not in output
    for script in directory.glob("*.yaml"):
        assert script.stem in output
    assert " 0 failed" in output


def test_the_library_has_every_scenario_in_english_and_chinese() -> None:
    names = {p.stem for p in LIBRARY.glob("*.yaml")}
    scenarios = {name.rsplit("_", 1)[0] for name in names}
    assert scenarios == {
        "collections",
        "repayment_negotiation",
        "marketing",
        "survey",
        "appointment_reminder",
    }
    assert names == {f"{s}_{lang}" for s in scenarios for lang in ("en", "zh")}


def test_a_broken_edit_fails_at_the_step_that_notices(cache: Path, scripts: Path) -> None:
    script = scripts / "payment_reminder_zh.yaml"
    text = script.read_text(encoding="utf-8")
    # The admin's slip: the "already paid" ending no longer tells the customer to ignore the
    # reminder. The script still validates (renaming its outcome would not: the grading rules
    # name it); only a case sees it.
    slip = text.replace("请忽略本次提醒，系统到账可能稍有延迟", "我们会尽快为您处理")
    assert slip != text
    script.write_text(slip)
    cases = scripts / "tests" / "payment_reminder_zh" / "basics.yaml"
    step_line = (
        cases.read_text(encoding="utf-8").splitlines().index("      - say: 我上周已经还过了")
    )
    code, output = run(cache, script)
    assert code == 1, output
    assert f"{cases}:{step_line + 1}: 已经还了: " in output
    assert "expected the bot to say '请忽略本次提醒'" in output
    assert "1 failed" in output


def test_a_wrong_expectation_names_what_happened(cache: Path, scripts: Path) -> None:
    cases = scripts / "tests" / "order_confirmation_en" / "basics.yaml"
    text = cases.read_text(encoding="utf-8")
    cases.write_text(
        text.replace("        outcome: wrong_person\n", "        outcome: confirmed\n")
    )
    code, output = run(cache, scripts / "order_confirmation_en.yaml")
    assert code == 1
    assert "wrong person: expected outcome 'confirmed', got 'wrong_person'" in output


@pytest.mark.parametrize(
    ("case_text", "message"),
    [
        (
            "cases:\n  - name: two events\n    steps:\n      - say: yes\n        dtmf: 1\n",
            ":4:9: cases.0.steps.0: Value error, a step is exactly one of say, dtmf",
        ),
        (
            "cases:\n  - name: typo\n    steps:\n      - say: yes\n        nod: x\n",
            ":5:9: cases.0.steps.0.nod: unknown field 'nod'; did you mean 'node'?",
        ),
        ("cases:\n  - name: [unclosed\n", ":2:11: YAML syntax error"),
        (
            "cases:\n  - name: keys\n    steps:\n      - dtmf: 1\n        audio: one.wav\n",
            ":4:9: cases.0.steps.0: Value error, audio is the recording of a `say` step",
        ),
    ],
)
def test_a_bad_case_file_is_reported_at_file_line_col(
    cache: Path, scripts: Path, case_text: str, message: str
) -> None:
    bad = scripts / "tests" / "order_confirmation_en" / "zz_bad.yaml"
    bad.write_text(case_text)
    code, output = run(cache, scripts / "order_confirmation_en.yaml")
    assert code == 1
    assert f"{bad}{message}" in output.replace("\n", " ")


def test_a_wrong_grade_fails_at_the_step_with_the_grade_the_rules_gave(
    cache: Path, scripts: Path
) -> None:
    cases = scripts / "tests" / "payment_reminder_zh" / "basics.yaml"
    lines = cases.read_text(encoding="utf-8").splitlines()
    step_line = lines.index("      - say: 我明天就还") + 1
    text = cases.read_text(encoding="utf-8")
    # The promise carries a date, so the rules give A; the case claims B.
    cases.write_text(text.replace("        grade: A\n", "        grade: B\n", 1))
    code, output = run(cache, scripts / "payment_reminder_zh.yaml")
    assert code == 1
    assert (
        f"{cases}:{step_line}: 承诺还款并记录日期: expected grade 'B', got 'A' (承诺了还款日期)"
        in (output.replace("\n", ""))
    )


@pytest.mark.parametrize(
    ("step", "message"),
    [
        # The call waits at ask_plan after this step: there is no grade yet.
        ("      - say: 是我\n        grade: A\n", "but the call has not ended at this step"),
        ("      - say: 是我\n        grade: G\n", "cases.0.steps.0.grade: Input should be 'A'"),
    ],
)
def test_a_grade_that_cannot_hold_is_reported(
    cache: Path, scripts: Path, step: str, message: str
) -> None:
    cases = scripts / "tests" / "payment_reminder_zh" / "zz_grade.yaml"
    cases.write_text(
        'cases:\n  - name: early grade\n    variables: {customer_name: 张先生, amount: "3500"}\n'
        f"    steps:\n{step}",
        encoding="utf-8",
    )
    code, output = run(cache, scripts / "payment_reminder_zh.yaml")
    assert code == 1
    assert f"{cases}:" in output
    assert message in output.replace("\n", "")


def test_a_grade_for_a_script_without_grading_rules_fails(cache: Path, scripts: Path) -> None:
    script = scripts / "library" / "survey_en.yaml"
    assert "grading:" not in script.read_text(encoding="utf-8")
    cases = scripts / "library" / "tests" / "survey_en" / "zz_grade.yaml"
    cases.write_text(
        "cases:\n  - name: graded\n    variables: {customer_name: Ann}\n"
        "    steps:\n      - say: stop calling me\n        grade: F\n",
        encoding="utf-8",
    )
    code, output = run(cache, script)
    assert code == 1
    assert "expected grade 'F', but the script has no grading rules" in output
