from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compliance.redact import cn_id_check_digit, is_valid_cn_id, luhn_valid, redact

# A well-formed resident ID: area 110105, born 1949-12-31, sequence 002, check digit computed.
ID_BODY = "11010519491231002"
VALID_ID = ID_BODY + cn_id_check_digit(ID_BODY)


def test_check_digit_known_value() -> None:
    # The ISO 7064 MOD 11-2 example from GB 11643-1999.
    assert cn_id_check_digit("11010519491231002") == "X"
    assert is_valid_cn_id("11010519491231002X")
    assert not is_valid_cn_id("110105194912310021")  # wrong check digit
    assert not is_valid_cn_id("11010519491331002X")  # month 13


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的电话13812345678谢谢", "我的电话[PHONE]谢谢"),
        ("打 138 1234 5678 找我", "打 [PHONE] 找我"),
        ("call me at +1 415-555-2671 today", "call me at [PHONE] today"),
        ("office 021-6234 5678", "office [PHONE]"),
        ("card 4111 1111 1111 1111 please", "card [CARD] please"),
        ("卡号6222021234567890128", "卡号[CARD]"),
        (f"身份证号{VALID_ID}", "身份证号[ID]"),
        ("id 11010519491231002x ok", "id [ID] ok"),
        ("mail bob.smith+bills@example.co.uk now", "mail [EMAIL] now"),
    ],
)
def test_pii_is_redacted(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "我还3500元",
        "you owe 1,200.50 dollars",
        "￥35,000 by 2025-03-12",
        "order 12345678 ships in 3 days",
        "4111 1111 1111 1112 is not a card",  # fails Luhn
        "110105194912310021",  # bad ID check digit
        "appointment at 10:30 on 3/15",
    ],
)
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    result = redact(text)
    assert (result.text, result.hits) == (text, ())


def test_hits_give_kind_and_offsets_but_not_the_value() -> None:
    text = "13812345678 / a@b.cn"
    hits = redact(text).hits
    assert [(h.kind, text[h.start : h.end]) for h in hits] == [
        ("phone", "13812345678"),
        ("email", "a@b.cn"),
    ]


def test_unknown_phone_region_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown phone region"):
        redact("13812345678", regions=["XX"])


def luhn_complete(body: str) -> str:
    for d in "0123456789":
        if luhn_valid(body + d):
            return body + d
    raise AssertionError("unreachable: one digit always completes a Luhn number")


@given(st.text(alphabet="0123456789", min_size=15, max_size=15))
def test_any_luhn_valid_16_digit_card_is_redacted(body: str) -> None:
    card = luhn_complete(body)
    grouped = " ".join(card[i : i + 4] for i in range(0, 16, 4))
    assert redact(f"card: {grouped}.").text == "card: [CARD]."


@given(st.integers(min_value=0, max_value=999_999), st.integers(min_value=0, max_value=99))
def test_amounts_are_never_redacted(whole: int, cents: int) -> None:
    for text in (f"{whole}元", f"${whole:,}.{cents:02d}", f"amount {whole}"):
        assert redact(text).text == text
