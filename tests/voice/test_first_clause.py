"""Splitting a reply into a short first clause (its audio starts sooner) and sentences."""

from __future__ import annotations

import pytest

from voice.tts import split_first_clause, split_sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Great, your order ships today.", ("Great,", "your order ships today.")),
        ("Thanks. Order A-1 is ready.", ("Thanks.", "Order A-1 is ready.")),
        ("好的，我们下周一再联系您。", ("好的，", "我们下周一再联系您。")),
        # No short first clause: the text stays whole.
        ("Am I speaking with Alex?", ("", "Am I speaking with Alex?")),
        (
            "Your order for a blue kettle ships today, thanks.",
            ("", "Your order for a blue kettle ships today, thanks."),
        ),
        (
            "您好这里是某某银行信用卡中心，来电提醒您还款。",
            ("", "您好这里是某某银行信用卡中心，来电提醒您还款。"),
        ),
        ("Goodbye.", ("", "Goodbye.")),
    ],
)
def test_split_first_clause(text: str, expected: tuple[str, str]) -> None:
    assert split_first_clause(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Great, your order will arrive soon. Thank you, goodbye.",
            ["Great, your order will arrive soon.", "Thank you, goodbye."],
        ),
        ("Hello? Is this Alex? Press 1!", ["Hello?", "Is this Alex?", "Press 1!"]),
        ("您好。这是测试！好的？", ["您好。", "这是测试！", "好的？"]),
        # A dot inside a token is not a sentence end.
        ("Your total is 3.50 today.", ["Your total is 3.50 today."]),
        ("No end mark", ["No end mark"]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected
