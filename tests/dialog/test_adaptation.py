"""The `on_emotion` adapt action: what the bot does differently for an impatient customer."""

from __future__ import annotations

from pathlib import Path

from dialog import DialogEngine, Dtmf, EmotionScore, Say, Transfer, Utterance, parse_script
from dialog.actions import Action, Listen
from dialog.graph import ANY, flow_graph
from dialog.validate import validate_script

ADAPTIVE = """\
schema_version: 1
name: adaptive
language: en
success_outcomes: [done]
identification:
  who: Hi, this is the automated assistant of Acme.
  opt_out: Say stop calling to get no more calls.
start: ask
nodes:
  ask:
    kind: listen
    prompt: Before we start, may I take a few minutes to go through your new contract?
    short: Can we go through your contract?
    intents: {affirm: blurb, deny: bye}
    dtmf: {1: blurb}
    no_input: {max_retries: 1, then: bye}
    no_match: {max_retries: 1, then: bye}
  blurb:
    kind: say
    text: Our contracts come with a free year of premium support.
    optional: true
    next: confirm
  confirm:
    kind: listen
    prompt: Your contract starts on Monday and runs for two years, does that work for you?
    short: Starting Monday, okay?
    intents: {affirm: done}
    no_input: {max_retries: 1, then: bye}
    no_match: {max_retries: 1, then: bye}
  done:
    kind: end
    say: Thank you, goodbye.
    disposition: completed
    outcome: done
  bye:
    kind: end
    say: Goodbye.
    disposition: completed
    outcome: declined
on_emotion:
  - above: 0.5
    action: adapt
    adapt:
      slower: 1.2
      apologise: Sorry, I'll be quick.
      offer_person:
        say: Press zero or ask for an agent to talk to a person.
        target: support
        dtmf: "0"
  - above: 0.9
    action: transfer
    target: support
"""


def engine(text: str = ADAPTIVE) -> DialogEngine:
    loaded = parse_script(text, "adaptive.yaml")
    started = DialogEngine(loaded.script, {})
    started.start()
    return started


def said(actions: list[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


YES = Utterance("yes", intent="affirm", intent_confidence=0.9)


def test_without_agitation_the_full_prompts_play_at_the_normal_pace() -> None:
    call = engine()
    actions = call.handle(YES)
    assert said(actions) == [
        "Our contracts come with a free year of premium support.",
        "Your contract starts on Monday and runs for two years, does that work for you?",
    ]
    assert {a.pace for a in actions if isinstance(a, Say)} == {1.0}


def test_moderate_agitation_shortens_the_next_prompts_and_skips_optional_steps() -> None:
    call = engine()
    call.handle(EmotionScore(0.6))
    actions = call.handle(YES)
    assert said(actions) == ["Starting Monday, okay?"]  # the optional blurb is skipped
    assert isinstance(actions[-1], Listen) and actions[-1].node == "confirm"


def test_an_adapted_call_speaks_slower() -> None:
    call = engine()
    adapting = call.handle(EmotionScore(0.6))
    after = call.handle(YES)
    assert {a.pace for a in adapting + after if isinstance(a, Say)} == {1.2}


def test_the_apology_and_the_offer_are_said_when_the_adaptation_starts() -> None:
    call = engine()
    assert said(call.handle(EmotionScore(0.6))) == [
        "Sorry, I'll be quick.",
        "Press zero or ask for an agent to talk to a person.",
    ]


def test_the_apology_is_said_once_per_call() -> None:
    text = ADAPTIVE.replace(
        "  - above: 0.9\n",
        "  - above: 0.7\n    action: adapt\n    adapt: {apologise: Sorry again.}\n  - above: 0.9\n",
    )
    call = engine(text)
    assert "Sorry, I'll be quick." in said(call.handle(EmotionScore(0.6)))
    assert said(call.handle(EmotionScore(0.6))) == []  # a rule fires once
    assert said(call.handle(EmotionScore(0.75))) == []  # a second adapt rule: no apology again


def test_a_reprompt_uses_the_short_form_while_adapted() -> None:
    call = engine()
    call.handle(EmotionScore(0.6))
    actions = call.handle(Utterance("hmm", intent=None))
    assert said(actions) == ["Can we go through your contract?"]


def test_the_customer_accepts_the_person_by_asking_for_one() -> None:
    call = engine()
    call.handle(EmotionScore(0.6))
    [transfer] = call.handle(Utterance("an agent please", intent="ask_human"))
    assert isinstance(transfer, Transfer) and transfer.target == "support"
    assert "reason: customer accepted a person" in transfer.summary


def test_the_customer_accepts_the_person_by_pressing_the_key() -> None:
    call = engine()
    call.handle(EmotionScore(0.6))
    [transfer] = call.handle(Dtmf("0"))
    assert isinstance(transfer, Transfer) and transfer.target == "support"


def test_asking_for_a_person_without_an_offer_is_an_ordinary_no_match() -> None:
    call = engine()
    actions = call.handle(Utterance("an agent please", intent="ask_human"))
    assert not any(isinstance(a, Transfer) for a in actions)


def test_high_agitation_still_transfers_with_context() -> None:
    call = engine()
    call.handle(EmotionScore(0.6))
    [transfer] = call.handle(EmotionScore(0.95, "this is taking forever", "complaint"))
    assert isinstance(transfer, Transfer) and transfer.target == "support"
    assert 'last said: "this is taking forever"' in transfer.summary


def test_likely_replies_are_the_short_forms_once_adapted() -> None:
    call = engine()
    call.handle(EmotionScore(0.6))
    assert [s.text for s in call.likely_replies()] == ["Starting Monday, okay?", "Goodbye."]


def check(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return [f"{i.line}:{i.col}: {i.message}" for i in validate_script(path)]


def test_the_adaptive_script_is_valid(tmp_path: Path) -> None:
    assert check(tmp_path, ADAPTIVE) == []


def test_an_unknown_adaptation_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    text = ADAPTIVE.replace("      slower: 1.2\n", "      slowly: 1.2\n")
    [issue] = check(tmp_path, text)
    assert issue.startswith("44:7: on_emotion.0.adapt.slowly: unknown field 'slowly'")


def test_adapt_without_its_block_is_an_error(tmp_path: Path) -> None:
    text = (
        ADAPTIVE.split("    adapt:\n")[0] + "  - above: 0.9\n    action: transfer\n"
        "    target: support\n"
    )
    [issue] = check(tmp_path, text)
    assert "on_emotion.0" in issue and "action 'adapt' needs `adapt`" in issue


def test_a_pace_out_of_range_is_an_error(tmp_path: Path) -> None:
    [issue] = check(tmp_path, ADAPTIVE.replace("slower: 1.2", "slower: 3"))
    assert issue == "44:7: on_emotion.0.adapt.slower: Input should be less than or equal to 1.5"


def test_a_short_form_with_an_unknown_variable_is_an_error(tmp_path: Path) -> None:
    issues = check(tmp_path, ADAPTIVE.replace("Starting Monday, okay?", "Starting {day}, ok?"))
    assert issues == ["26:12: template uses unknown variable {day}"]  # the short form's line


def test_the_texts_only_an_adapted_call_says_are_listed_by_pace_for_prerendering() -> None:
    script = parse_script(ADAPTIVE, "adaptive.yaml").script
    assert script.adapted_prompts() == {
        1.2: [
            "Sorry, I'll be quick.",
            "Press zero or ask for an agent to talk to a person.",
            "Can we go through your contract?",
            "Starting Monday, okay?",
        ]
    }


def test_the_flow_graph_shows_the_person_an_adapted_call_offers() -> None:
    graph = flow_graph(parse_script(ADAPTIVE, "adaptive.yaml").script)
    labels = {e.label for e in graph.edges if e.source == ANY}
    assert "agitation >= 0.5: a person, if accepted" in labels and "agitation >= 0.9" in labels
