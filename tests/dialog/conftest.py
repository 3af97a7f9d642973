from __future__ import annotations

from pathlib import Path

import pytest

from dialog import LoadedScript, load_script, parse_script

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"

ORDER_FIELDS = {
    "customer_name": "Ann",
    "order_number": "A1",
    "item": "a lamp",
    "address": "1 Main St",
}

# A small valid English script; tests derive broken variants from it line by line.
MINIMAL = """\
schema_version: 1
name: minimal
language: en
success_outcomes: [confirmed]
variables:
  customer_name: {required: true}
  amount: {default: "100"}
identification:
  who: Hi, this is the automated assistant of Acme.
  opt_out: Say stop calling to get no more calls.
start: ask
nodes:
  ask:
    kind: listen
    prompt: Is this {customer_name}?
    fallback: Is this the account holder?
    intents:
      affirm: done
      deny: bye
    dtmf: {1: done}
    no_input: {say: ["Hello?", "Are you there?"], max_retries: 2, then: bye}
    no_match: {max_retries: 1, then: bye}
  done:
    kind: end
    say: Thanks, you owe {amount}.
    disposition: completed
    outcome: confirmed
  bye:
    kind: end
    say: Goodbye.
    disposition: completed
    outcome: declined
"""


@pytest.fixture
def minimal() -> LoadedScript:
    return parse_script(MINIMAL, "minimal.yaml")


@pytest.fixture(scope="session")
def payment_zh() -> LoadedScript:
    return load_script(SCRIPTS / "payment_reminder_zh.yaml")


@pytest.fixture(scope="session")
def order_en() -> LoadedScript:
    return load_script(SCRIPTS / "order_confirmation_en.yaml")
