"""Every validation error class, with the line and column it is reported at."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialog import ScriptError, announces_recording, load_script, parse_script, validate_script
from dialog.validate import MISSING_IDENTIFICATION
from tests.dialog.conftest import MINIMAL, SCRIPTS


def check(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return [f"{i.line}:{i.col}: {i.message}" for i in validate_script(path)]


def edit(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new, 1)


def test_minimal_and_shipped_scripts_are_valid(tmp_path: Path) -> None:
    assert check(tmp_path, MINIMAL) == []
    for path in SCRIPTS.glob("*.yaml"):
        assert validate_script(path) == [], path


def test_issue_format_is_file_line_col_message(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(edit("      deny: bye", "      deny: goodbye"))
    [issue] = validate_script(path)
    assert str(issue) == f"{path}:19:7: undefined node 'goodbye'; did you mean 'bye'?"


def test_yaml_syntax_error(tmp_path: Path) -> None:
    text = edit("    prompt: Is this {customer_name}?", "    prompt: [unclosed")
    [issue] = check(tmp_path, text)
    # PyYAML notices the unclosed bracket at the next line; the issue names the bracket's own.
    assert (
        issue
        == "15:13: YAML syntax error: this [ ] list or { } mapping is not closed, or lacks a comma"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # A missing colon: PyYAML reports it on the next line, as "while scanning a simple key".
        (
            "    prompt: Is this {customer_name}?",
            "    prompt Is this {customer_name}?",
            "15:5: YAML syntax error: missing ':' after the key on this line (write `key: value`)",
        ),
        (
            "  ask:\n",
            "  ask\n",
            "13:6: YAML syntax error: missing ':' at the end of this line",
        ),
        (
            "    prompt: Is this {customer_name}?",
            "    prompt: Hello: is this {customer_name}?",
            "15:18: YAML syntax error: unexpected ':' here: quote a text that contains ': ', or "
            "check this line's indentation",
        ),
        (
            "    prompt: Is this {customer_name}?",
            "    prompt: {customer_name}, is this you?",
            "15:28: YAML syntax error: a text that starts with { or [ must be quoted",
        ),
        (
            "    prompt: Is this {customer_name}?",
            "\tprompt: Is this {customer_name}?",
            "15:1: YAML syntax error: a tab character: indent with spaces only",
        ),
    ],
)
def test_yaml_mistakes_are_named_in_plain_words_at_their_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert check(tmp_path, edit(old, new)) == [expected]


def test_an_unclosed_quote_is_named_where_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text('name: x\nlanguage: "en\n')
    assert [str(i) for i in validate_script(path)] == [
        f"{path}:2:11: YAML syntax error: this quoted text is never closed (a quote is missing "
        "at its end)"
    ]


def test_duplicate_key(tmp_path: Path) -> None:
    text = edit("start: ask\n", "start: ask\nstart: bye\n")
    assert "12:1: duplicate key 'start' (the later one would win)" in check(tmp_path, text)


def test_not_a_mapping(tmp_path: Path) -> None:
    assert check(tmp_path, "- just\n- a list\n") == ["1:1: a script must be a YAML mapping"]


def test_missing_identification(tmp_path: Path) -> None:
    text = edit(
        "identification:\n  who: Hi, this is the automated assistant of Acme.\n"
        "  opt_out: Say stop calling to get no more calls.\n",
        "",
    )
    assert check(tmp_path, text) == [f"1:1: {MISSING_IDENTIFICATION}"]


def test_identification_without_opt_out(tmp_path: Path) -> None:
    text = edit("  opt_out: Say stop calling to get no more calls.\n", "")
    assert check(tmp_path, text) == ["8:1: identification: missing required field 'opt_out'"]


def test_schema_error_wrong_type_points_at_the_value(tmp_path: Path) -> None:
    text = edit("{max_retries: 1, then: bye}", "{max_retries: many, then: bye}")
    [issue] = check(tmp_path, text)
    assert issue.startswith("22:16: nodes.ask.no_match.max_retries: Input should be a valid int")


def test_schema_error_unknown_field(tmp_path: Path) -> None:
    text = edit(
        "    disposition: completed\n    outcome: confirmed",
        "    disposition: completed\n    outcom: confirmed",
    )
    assert check(tmp_path, text) == [
        "23:3: nodes.done: missing required field 'outcome'",
        "27:5: nodes.done.outcom: unknown field 'outcom'; did you mean 'outcome'?",
    ]


def test_schema_error_bad_node_kind(tmp_path: Path) -> None:
    text = edit("    kind: end\n    say: Goodbye.", "    kind: hangup\n    say: Goodbye.")
    assert check(tmp_path, text) == [
        "28:3: nodes.bye: unknown node kind (expected say, listen, transfer or end)"
    ]


def test_schema_error_bad_dtmf_key(tmp_path: Path) -> None:
    text = edit("    dtmf: {1: done}", "    dtmf: {12: done}")
    [issue] = check(tmp_path, text)
    assert issue.startswith("20:5: nodes.ask.dtmf: Value error, DTMF keys must be one of")


def test_undefined_node_reference(tmp_path: Path) -> None:
    text = edit("      deny: bye", "      deny: goodbye")
    assert check(tmp_path, text) == ["19:7: undefined node 'goodbye'; did you mean 'bye'?"]


def test_unreachable_node(tmp_path: Path) -> None:
    text = MINIMAL + "  orphan:\n    kind: end\n    disposition: x\n    outcome: y\n"
    assert check(tmp_path, text) == ["33:3: node 'orphan' is unreachable"]


def test_say_loop(tmp_path: Path) -> None:
    text = edit(
        "      deny: bye",
        "      deny: loop_a",
    ) + (
        "  loop_a:\n    kind: say\n    text: A\n    next: loop_b\n"
        "  loop_b:\n    kind: say\n    text: B\n    next: loop_a\n"
    )
    assert check(tmp_path, text) == ["33:3: say nodes loop forever: loop_a -> loop_b -> loop_a"]


def test_intent_without_examples(tmp_path: Path) -> None:
    text = edit("      deny: bye", "      deny: bye\n      ask_discount: bye")
    assert check(tmp_path, text) == [
        "20:7: intent 'ask_discount' has no examples: it is not built-in (affirm, deny, "
        "opt_out, who_is_this, complaint, call_later, wrong_person, repeat, already_paid, "
        "promise_to_pay, ask_human, dispute) nor defined under `intents:`"
    ]


def test_domain_intent_declared_with_no_examples(tmp_path: Path) -> None:
    text = edit("start: ask\n", "start: ask\nintents:\n  ask_discount: {examples: []}\n")
    assert "13:3: intent 'ask_discount' has no examples and is not a built-in intent" in check(
        tmp_path, text
    )


def test_domain_intent_with_examples_is_accepted(tmp_path: Path) -> None:
    text = edit(
        "start: ask\n", "start: ask\nintents:\n  ask_discount: {examples: [any discount]}\n"
    ).replace("      deny: bye", "      deny: bye\n      ask_discount: bye")
    assert check(tmp_path, text) == []


def test_template_with_unknown_variable(tmp_path: Path) -> None:
    text = edit("    say: Thanks, you owe {amount}.", "    say: Thanks, you owe {amount_due}.")
    assert check(tmp_path, text) == [
        "25:10: template uses unknown variable {amount_due}; did you mean 'amount'?"
    ]


def test_malformed_template(tmp_path: Path) -> None:
    text = edit("    say: Goodbye.", "    say: Goodbye {customer_name.")
    [issue] = check(tmp_path, text)
    assert issue.startswith("30:10: bad template")


def test_placeholder_must_be_plain_name(tmp_path: Path) -> None:
    text = edit("    say: Goodbye.", "    say: Goodbye {customer_name!r}.")
    assert check(tmp_path, text) == [
        "30:10: placeholder {customer_name} must be a plain variable name such as {amount}"
    ]


def test_capture_into_undeclared_variable(tmp_path: Path) -> None:
    text = edit("    dtmf: {1: done}", "    dtmf: {1: done}\n    capture: {date: promise_date}")
    assert check(tmp_path, text) == [
        "21:15: capture into undeclared variable 'promise_date' (add it to `variables`)"
    ]


def test_expect_for_an_intent_the_node_does_not_map(tmp_path: Path) -> None:
    text = edit("    dtmf: {1: done}", "    dtmf: {1: done}\n    expect: {already_paid: [paid]}")
    assert check(tmp_path, text) == [
        "21:14: expect lists phrases for 'already_paid', which this node's intents lack"
    ]


def test_static_prompt_with_blocked_word(tmp_path: Path) -> None:
    text = edit("    say: Goodbye.", "    say: Goodbye, idiot.")
    assert check(tmp_path, text) == [
        "30:10: text contains 'idiot' (insults), which compliance blocks: it would never be spoken"
    ]


def test_opt_out_handler_must_end_the_call(tmp_path: Path) -> None:
    text = MINIMAL + "handlers:\n  opt_out: {goto: ask}\n"
    assert check(tmp_path, text) == [
        "34:13: the opt_out handler must go to an `end` node: the customer refused the call"
    ]


def test_listen_node_without_a_way_out(tmp_path: Path) -> None:
    text = edit("    intents:\n      affirm: done\n      deny: bye\n    dtmf: {1: done}\n", "")
    issues = check(tmp_path, text)
    assert issues[0] == (
        "13:3: nodes.ask: Value error, a listen node needs `intents` or `dtmf` to go anywhere"
    )


def test_variant_referencing_unknown_node(tmp_path: Path) -> None:
    text = MINIMAL + "variants:\n  b:\n    start: nope\n    prompts: {ghost: Hi}\n"
    assert check(tmp_path, text) == [
        "35:5: undefined node 'nope'",
        "36:15: undefined node 'ghost'",
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    [issue] = validate_script(tmp_path / "missing.yaml")
    assert (issue.line, issue.col) == (1, 1) and "cannot read script" in issue.message


def test_load_script_raises_with_all_issues(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(edit("      deny: bye", "      deny: goodbye").replace("{amount}", "{amt}"))
    with pytest.raises(ScriptError) as info:
        load_script(path)
    assert [(i.line, i.col) for i in info.value.issues] == [(19, 7), (25, 10)]


def test_yes_and_no_stay_strings() -> None:
    loaded = parse_script(edit("success_outcomes: [confirmed]", "success_outcomes: [yes, no]"))
    assert loaded.script.success_outcomes == ["yes", "no"]


def test_content_hash_versions_the_source() -> None:
    a = parse_script(MINIMAL)
    b = parse_script(MINIMAL + "# a comment\n")
    assert len(a.content_hash) == 64 and a.content_hash != b.content_hash
    assert a.script == b.script


def test_variant_named_base_is_refused(tmp_path: Path) -> None:
    # "base" is the script as written in A/B allocation; a variant may not take the name.
    text = MINIMAL + "variants:\n  base:\n    start: ask\n"
    issues = check(tmp_path, text)
    assert len(issues) == 1
    assert "variants: " in issues[0] and "'base' names the script as written" in issues[0]


@pytest.mark.parametrize(
    ("who", "announced"),
    [
        ("Hi, this is the automated assistant of Acme.", False),
        ("Hi, this is Acme. This call may be recorded.", True),
        ("Hi, this is Acme; we are recording this call.", True),
        ("Hi, this is Acme, recorder of deeds.", False),
    ],
)
def test_a_recorded_call_must_be_announced_in_the_identification(who: str, announced: bool) -> None:
    script = parse_script(edit("who: Hi, this is the automated assistant of Acme.", f"who: {who}"))
    assert announces_recording(script.script) is announced


def test_the_shipped_scripts_announce_recording() -> None:
    for path in SCRIPTS.glob("*.yaml"):
        assert announces_recording(load_script(path).script), path
