"""Lead grading: ordered rules give a grade and a reason; validate reports broken rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dialog import load_script, validate_script
from dialog.followup import pick_template, render_follow_up
from dialog.grading import CallFacts, GradeRule, GradeWhen, grade_call
from tests.dialog.conftest import MINIMAL, SCRIPTS


def facts(**given: object) -> CallFacts:
    base: dict[str, object] = {
        "outcome": None,
        "disposition": "completed",
        "success": False,
        "intents": frozenset(),
        "entities": frozenset(),
        "agitation_peak": 0.0,
        "duration_s": 30.0,
    }
    base.update(given)
    return CallFacts(**base)  # type: ignore[arg-type]


def payment_rules() -> list[GradeRule]:
    return load_script(SCRIPTS / "payment_reminder_zh.yaml").script.grading


def test_first_matching_rule_decides() -> None:
    rules = payment_rules()
    promised = facts(outcome="promised_to_pay", entities=frozenset({"date"}), success=True)
    vague = facts(outcome="promised_to_pay", success=True)
    assert grade_call(rules, promised).grade == "A"  # type: ignore[union-attr]
    result = grade_call(rules, vague)
    assert result is not None and (result.grade, result.reason) == ("B", "承诺还款但未给出日期")
    agitated = facts(disposition="transferred", agitation_peak=0.9)
    assert grade_call(rules, agitated).grade == "D"  # type: ignore[union-attr]
    assert grade_call(rules, facts(outcome="opt_out")).grade == "F"  # type: ignore[union-attr]
    # Nothing else fits: the catch-all at the end.
    last = grade_call(rules, facts(outcome="something_else"))
    assert last is not None and last.rule == len(rules) - 1


@pytest.mark.parametrize(
    ("when", "fits", "misses"),
    [
        ({"intents_any": ["deny", "complaint"]}, {"intents": frozenset({"deny"})}, {}),
        ({"intents_all": ["deny", "repeat"]}, {"intents": frozenset({"deny", "repeat"})},
         {"intents": frozenset({"deny"})}),
        ({"intents_none": ["complaint"]}, {}, {"intents": frozenset({"complaint"})}),
        ({"agitation_above": 0.5}, {"agitation_peak": 0.5}, {"agitation_peak": 0.49}),
        ({"agitation_below": 0.5}, {"agitation_peak": 0.2}, {"agitation_peak": 0.5}),
        ({"min_duration_s": 20, "max_duration_s": 40}, {"duration_s": 40}, {"duration_s": 41}),
        ({"success": True}, {"success": True}, {}),
        ({"disposition": "transferred"}, {"disposition": "transferred"}, {}),
    ],
)  # fmt: skip
def test_each_condition_can_hold_or_fail(
    when: dict[str, object], fits: dict[str, object], misses: dict[str, object]
) -> None:
    rules = [
        GradeRule(grade="A", reason="r", when=GradeWhen(**when)),
        GradeRule(grade="F", reason="x"),
    ]
    assert grade_call(rules, facts(**fits)).grade == "A"  # type: ignore[union-attr]
    assert grade_call(rules, facts(**misses)).grade == "F"  # type: ignore[union-attr]


def test_no_rules_no_grade() -> None:
    assert grade_call([], facts()) is None


def test_schema_refuses_bad_grades_and_ranges() -> None:
    with pytest.raises(ValidationError, match="grade"):
        GradeRule.model_validate({"grade": "G", "reason": "r"})
    with pytest.raises(ValidationError, match="agitation_above must be below"):
        GradeWhen.model_validate({"agitation_above": 0.8, "agitation_below": 0.2})
    with pytest.raises(ValidationError, match="min_duration_s must not exceed"):
        GradeWhen.model_validate({"min_duration_s": 50, "max_duration_s": 10})
    with pytest.raises(ValidationError, match="entities"):
        GradeWhen.model_validate({"entities": ["promise"]})


GRADING = """\
grading:
  - grade: A
    reason: confirmed on a date
    when: {outcome: [done, paid], entities: [date], intents_any: [affirm, agree_typo]}
  - {grade: C, reason: anything}
  - {grade: D, reason: never reached, when: {disposition: callback_typo}}
follow_up:
  - {name: thanks, channel: sms, text: "Thanks {customer_name}, {nobody}", outcomes: [nope]}
  - {name: thanks, channel: push, text: Thanks}
"""


def test_validate_reports_each_rule_problem_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(MINIMAL + GRADING, encoding="utf-8")
    issues = [f"{i.line}: {i.message}" for i in validate_script(path)]
    start = MINIMAL.count("\n") + 1
    assert any(m.startswith(f"{start + 3}: outcome: 'paid' is not one this script") for m in issues)
    assert any(m.startswith(f"{start + 3}: intents_any: 'agree_typo'") for m in issues)
    assert (
        f"{start + 4}: grading rule 2 matches every call, so the rules after it never apply"
        in issues
    )
    assert any("disposition: 'callback_typo'" in m for m in issues)
    assert any("the last grading rule needs no `when`" in m for m in issues)
    assert any("template uses unknown variable {nobody}" in m for m in issues)
    assert any("outcomes: 'nope'" in m for m in issues)
    assert any("already named 'thanks'" in m for m in issues)


def test_templates_pick_by_channel_outcome_and_grade_and_fill_variables() -> None:
    script = load_script(SCRIPTS / "payment_reminder_zh.yaml").script
    link = pick_template(script.follow_up, "sms", "promised_to_pay", "A")
    assert link is not None and link.name == "payment_link"
    other = pick_template(script.follow_up, "sms", "reminded", "D")
    assert other is not None and other.name == "due_reminder"
    assert pick_template(script.follow_up, "push", None, None).name == "due_reminder_push"  # type: ignore[union-attr]
    values = {"customer_name": "张先生", "amount": "3500", "promise_date": "6月10日"}
    text = render_follow_up(link, script, values)
    assert text.startswith("张先生，您承诺于6月10日还款3500元")
    # A variable the lead lacks falls back to the script's default.
    assert "最后还款日本月底" in render_follow_up(other, script, values)
