"""Splitting a short first clause off a reply, so its audio starts sooner."""

from __future__ import annotations

import pytest

from voice.tts import split_first_clause


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
