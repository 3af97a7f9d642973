"""What a script pre-renders at load: every piece of a prompt that holds no lead data."""

from __future__ import annotations

from pathlib import Path

from agi.runtime import default_opening, lead_free_pieces
from dialog import load_script, parse_script
from voice.tts import split_first_clause, split_sentences

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """\
schema_version: 1
name: pieces
language: en
success_outcomes: [paid]
variables:
  customer_name: {required: true}
  amount: {required: true}
  due: {default: next Friday}
  company: {default: Acme}
identification:
  who: Hi, this is {company}.
  opt_out: Say stop calling to get no more calls.
start: ask
nodes:
  ask:
    kind: listen
    prompt: Thanks. Is this {customer_name}? Press 1 for yes.
    intents: {affirm: done}
    no_input: {max_retries: 1, then: done}
    no_match: {max_retries: 1, then: done}
  done:
    kind: end
    say: Great, please pay {amount} by {due}. Your bill is due {due}. Goodbye.
    disposition: completed
    outcome: paid
"""


def test_lead_free_pieces_are_the_clauses_and_sentences_without_lead_data() -> None:
    script = parse_script(SCRIPT, "pieces.yaml").script
    pieces = lead_free_pieces(script)
    assert "Thanks." in pieces and "Press 1 for yes." in pieces
    assert "Great," in pieces and "Goodbye." in pieces
    # Script defaults are not lead data: a sentence using only them is pre-rendered.
    assert "Your bill is due next Friday." in pieces
    # Nothing that carries a lead's name or amount, and no piece of the opening (whole).
    assert not [p for p in pieces if "{" in p or "Acme" in p or "pay" in p or "Is this" in p]
    assert default_opening(script) == "Hi, this is Acme. Say stop calling to get no more calls."


def test_every_piece_is_how_the_session_cuts_a_reply() -> None:
    script = load_script(ROOT / "scripts" / "order_confirmation_en.yaml").script
    reply = "Great, your order will arrive in the next few days. Thank you, goodbye."
    head, tail = split_first_clause(reply)
    pieces = lead_free_pieces(script)
    assert head in pieces and tail in pieces
    assert all(sentence in pieces for sentence in split_sentences(tail))
