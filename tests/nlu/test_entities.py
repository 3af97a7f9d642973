from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlu.entities import extract_entities, parse_chinese_number, parse_english_number

TODAY = date(2025, 3, 12)  # a Wednesday


def found(text: str, language: str) -> list[tuple[str, object]]:
    return [(e.label, e.value) for e in extract_entities(text, language, TODAY)]


@pytest.mark.parametrize(
    ("numeral", "value"),
    [
        ("三千五百", 3500),
        ("两万", 20000),
        ("三千五", 3500),
        ("一万二", 12000),
        ("十五", 15),
        ("二十", 20),
        ("一百零八", 108),
        ("三千零五", 3005),
        ("两万五千", 25000),
        ("二零二四", 2024),
        ("壹佰", 100),
        ("一亿", 100_000_000),
    ],
)
def test_chinese_numerals(numeral: str, value: int) -> None:
    assert parse_chinese_number(numeral) == value


def test_not_a_chinese_numeral_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a Chinese numeral"):
        parse_chinese_number("三千abc")


@pytest.mark.parametrize(
    ("words", "value"),
    [
        ("five hundred", 500),
        ("two hundred and fifty", 250),
        ("a thousand", 1000),
        ("twenty-five", 25),
        ("three thousand five hundred", 3500),
    ],
)
def test_english_number_words(words: str, value: int) -> None:
    assert parse_english_number(words) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我先还三千五", [("amount", 3500)]),
        ("明天还1.5万", [("date", "2025-03-13"), ("amount", 15000)]),
        ("下周一还两千块", [("date", "2025-03-17"), ("amount", 2000)]),
        ("我15号还", [("date", "2025-03-15")]),
        ("3月20号还 ¥1,200.50", [("date", "2025-03-20"), ("amount", 1200.5)]),
        ("月底还", [("date", "2025-03-31")]),
        ("过两天还", [("date", "2025-03-14")]),
        ("周五还", [("date", "2025-03-14")]),
        ("明天下午三点半打过来", [("date", "2025-03-13"), ("time", "15:30")]),
        ("晚上8点", [("time", "20:00")]),
        ("不是我", [("yes_no", False)]),
        ("没问题", [("yes_no", True)]),
        ("是的", [("yes_no", True)]),
        ("嗯", [("yes_no", True)]),
        ("我一定还 一下", []),
        # Scores: a lone numeral before 分 is a number, also after 给 (not money).
        ("五分", [("number", 5)]),
        ("打八分吧", [("number", 8)]),
        ("打9分", [("number", 9)]),
        ("我给五分", [("number", 5)]),
        ("给10分", [("number", 10)]),
        ("万分感谢", []),
        ("九点五分", [("time", "09:05")]),
        ("给五块", [("amount", 5)]),
    ],
)
def test_chinese_entities(text: str, expected: list[tuple[str, object]]) -> None:
    assert found(text, "zh") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i'll pay five hundred dollars next friday", [("amount", 500), ("date", "2025-03-21")]),
        ("yes the 15th at 3pm", [("yes_no", True), ("date", "2025-03-15"), ("time", "15:00")]),
        ("i'll pay $1,200.50 on march 3rd", [("amount", 1200.5), ("date", "2026-03-03")]),
        ("call me at 10:30 tomorrow", [("time", "10:30"), ("date", "2025-03-13")]),
        ("on friday i'll pay 2k", [("date", "2025-03-14"), ("amount", 2000)]),
        ("in 3 days", [("date", "2025-03-15")]),
        ("i paid on the fifth", [("date", "2025-04-05")]),
        ("no problem", [("yes_no", True)]),
        ("nope not me", [("yes_no", False)]),
        ("no one here", [("yes_no", False)]),
        ("the order has 3 items", [("number", 3)]),
    ],
)
def test_english_entities(text: str, expected: list[tuple[str, object]]) -> None:
    assert found(text, "en") == expected


def test_unsupported_language_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        extract_entities("hola", "es", TODAY)


@given(st.integers(min_value=0, max_value=10**9))
def test_arabic_amounts_in_yuan_round_trip(value: int) -> None:
    assert found(f"还{value}元", "zh") == [("amount", value)]


@given(st.integers(min_value=0, max_value=10**9))
def test_grouped_dollar_amounts_round_trip(value: int) -> None:
    assert found(f"i can pay ${value:,}", "en") == [("amount", value)]
