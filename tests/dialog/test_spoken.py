"""Dates, times, amounts and numbers are spoken as people say them, in the script's language."""

from __future__ import annotations

import pytest

from dialog import DialogEngine, Say, Utterance, parse_script
from dialog.spoken import spoken
from nlu.entities import Entity


@pytest.mark.parametrize(
    ("value", "kind", "language", "currency", "said"),
    [
        ("2026-12-17", "date", "en", None, "Thursday, December 17th"),
        ("2026-12-01", "date", "en", None, "Tuesday, December 1st"),
        ("2026-12-22", "date", "en", None, "Tuesday, December 22nd"),
        ("2026-12-11", "date", "en", None, "Friday, December 11th"),
        ("2026-12-17", "date", "zh", None, "十二月十七日，星期四"),
        ("15:30:00", "time", "en", None, "3:30 PM"),
        ("15:00:00", "time", "zh", None, "下午三点"),
        ("09:05", "time", "zh", None, "上午九点五分"),
        ("35.5", "amount", "en", None, "35 dollars and 50 cents"),
        ("1", "amount", "en", "USD", "1 dollar"),
        ("1200", "amount", "en", "GBP", "1,200 pounds"),
        ("12.5", "amount", "en", "JPY", "12.5 Japanese yen"),
        ("3500", "amount", "zh", None, "三千五百元"),
        ("35.5", "amount", "zh", None, "三十五元五角"),
        ("35.05", "amount", "zh", "CNY", "三十五元零五分"),
        ("12.5", "amount", "zh", "USD", "十二点五美元"),
        ("35.50", "number", "zh", None, "三十五点五"),
        ("42", "number", "en", None, "42"),
        # What does not parse is said as written; a call never fails on a value.
        ("next week", "date", "en", None, "next week"),
        ("lots", "amount", "zh", None, "lots"),
        ("NaN", "number", "en", None, "NaN"),
        ("2026-12-17", "text", "en", None, "2026-12-17"),
    ],
)
def test_values_are_spoken_naturally(
    value: str, kind: str, language: str, currency: str | None, said: str
) -> None:
    assert spoken(value, kind, language, currency) == said  # type: ignore[arg-type]


SCRIPT = """\
schema_version: 1
name: promise
language: {language}
success_outcomes: [promised]
variables:
  amount: {{required: true, type: amount}}
  promise_date: {{}}
identification:
  who: "Hi, this is the assistant of Acme."
  opt_out: "Say stop to opt out."
start: ask
intents:
  promise_to_pay:
    examples: [I will pay next thursday, on friday, how about next week]
nodes:
  ask:
    kind: listen
    prompt: "You owe {{amount}}. When can you pay?"
    intents: {{promise_to_pay: confirm}}
    capture: {{date: promise_date}}
    no_input: {{then: bye}}
    no_match: {{then: bye}}
  confirm:
    kind: end
    disposition: completed
    outcome: promised
    say: "So {{amount}} by {{promise_date}}. Thank you."
  bye:
    kind: end
    disposition: completed
    outcome: none
"""


@pytest.mark.parametrize(
    ("language", "opening", "closing"),
    [
        ("en", "You owe 35 dollars and 50 cents.", "So 35 dollars and 50 cents by Thursday, "
         "December 17th. Thank you."),
        ("zh", "You owe 三十五元五角.", "So 三十五元五角 by 十二月十七日，星期四. Thank you."),
    ],
)  # fmt: skip
def test_the_engine_speaks_typed_and_captured_values_naturally(
    language: str, opening: str, closing: str
) -> None:
    from datetime import date

    script = parse_script(SCRIPT.format(language=language)).script
    engine = DialogEngine(script, {"amount": "35.5"})
    said = [a.text for a in engine.start() if isinstance(a, Say)]
    assert said[-1].startswith(opening)
    when = Entity("date", "next thursday", 13, 26, date(2026, 12, 17))
    actions = engine.handle(Utterance("next thursday", "promise_to_pay", 0.9, [when]))
    assert [a.text for a in actions if isinstance(a, Say)] == [closing]
    assert engine.variables["promise_date"] == "2026-12-17"  # stored as data, spoken as words
