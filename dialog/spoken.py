"""Values as a person says them, in the script's language: dates, times, amounts, numbers.

A captured date is stored as `2026-12-17`; read out as written, a caller hears "two thousand
twenty six dash twelve dash seventeen". Here it becomes "Thursday, December 17th" or
"十二月十七日，星期四". Month, weekday and currency names come from babel (CLDR data);
Chinese numerals from cn2an, so the Chinese voice never has to guess how to read digits.
English numbers stay digits in a shape the English voices read well ("17th", "35 dollars
and 50 cents"). A value that does not parse is spoken as written: a call never fails on it.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal, InvalidOperation
from typing import Literal

import cn2an
from babel.dates import format_date, format_time
from babel.numbers import get_currency_name

Kind = Literal["text", "date", "time", "amount", "number"]
LOCALES = {"en": "en_US", "zh": "zh_CN"}
DEFAULT_CURRENCY = {"en": "USD", "zh": "CNY"}
# Main and minor unit names where CLDR's display name is not what people say.
_EN_UNITS = {
    "USD": ("dollar", "dollars", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "CNY": ("yuan", "yuan", "fen", "fen"),
}


def spoken(value: str, kind: Kind, language: str, currency: str | None = None) -> str:
    """`value` as said in `language` (en or zh); unchanged for text or what does not parse."""
    try:
        if kind == "date":
            return _date(date.fromisoformat(value.strip()[:10]), language)
        if kind == "time":
            return _time(time.fromisoformat(value.strip()), language)
        if kind == "amount":
            return _amount(_decimal(value), language, currency or DEFAULT_CURRENCY[language])
        if kind == "number":
            return _number(_decimal(value), language)
    except (ValueError, KeyError, InvalidOperation):
        pass
    return value


def _decimal(value: str) -> Decimal:
    number = Decimal(value.strip().replace(",", ""))
    if not number.is_finite():
        raise ValueError(value)
    return number


def _zh_integer(n: int) -> str:
    return str(cn2an.an2cn(str(n), "low"))


def _en_ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _date(day: date, language: str) -> str:
    weekday = format_date(day, "EEEE", locale=LOCALES[language])
    if language == "zh":
        return f"{_zh_integer(day.month)}月{_zh_integer(day.day)}日，{weekday}"
    month = format_date(day, "MMMM", locale=LOCALES[language])
    return f"{weekday}, {month} {_en_ordinal(day.day)}"


def _time(moment: time, language: str) -> str:
    locale = LOCALES[language]
    if language == "zh":
        period = format_time(moment, "a", locale=locale)
        hour = _zh_integer(moment.hour % 12 or 12)
        minutes = f"{_zh_integer(moment.minute)}分" if moment.minute else ""
        return f"{period}{hour}点{minutes}"
    return format_time(moment, "h:mm a" if moment.minute else "h a", locale=locale)


def _number(number: Decimal, language: str) -> str:
    text = format(number.normalize(), "f")
    return str(cn2an.an2cn(text, "low")) if language == "zh" else text


def _amount(number: Decimal, language: str, currency: str) -> str:
    cents = int((number * 100).to_integral_value()) % 100
    whole = int(number)
    if language == "zh":
        name = "元" if currency == "CNY" else get_currency_name(currency, locale="zh_CN")
        text = f"{_zh_integer(whole)}{name}"
        if currency == "CNY" and cents:
            jiao, fen = divmod(cents, 10)
            text += (f"{_zh_integer(jiao)}角" if jiao else "零") + (
                f"{_zh_integer(fen)}分" if fen else ""
            )
        elif cents:
            text = f"{_number(number, language)}{name}"
        return text
    one, many, minor_one, minor_many = _EN_UNITS.get(
        currency, (*(get_currency_name(currency, count=n, locale="en_US") for n in (1, 2)), "", "")
    )
    text = f"{whole:,} {one if whole == 1 else many}"
    if cents and minor_many:
        text += f" and {cents} {minor_one if cents == 1 else minor_many}"
    elif cents:
        text = f"{number.normalize():f} {many}"
    return text
