"""Rule-based entities in customer replies: yes/no, numbers, amounts, dates and times.

`extract_entities(text, language, today)` is pure: relative dates ("明天", "下周一",
"next Friday", "the 15th") are resolved against the `today` the caller passes, so a call
session passes the customer's local date and tests pass a fixed one.

Conventions for relative dates:
- bare or "this" weekday ("Friday", "周五", "这周五"): the next such day on or after today;
- "next <weekday>" / "下周X": that weekday in the following Monday-based week;
- a day of month alone ("the 15th", "15号"): this month, or next month when already past.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import asdict, dataclass
from datetime import date, timedelta

EntityValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity found in a text; `start`/`end` are character offsets into that text."""

    label: str  # yes_no | number | amount | date | time
    text: str
    start: int
    end: int
    value: EntityValue

    def to_dict(self) -> dict[str, EntityValue]:
        return asdict(self)


# --- numbers -------------------------------------------------------------------------------

_ZH_DIGITS = {
    "零": 0, "〇": 0, "幺": 1, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "俩": 2,
    "三": 3, "叁": 3, "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6,
    "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_ZH_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_ZH_BIG_UNITS = {"万": 10_000, "萬": 10_000, "亿": 100_000_000}
_ZH_NUM_CHARS = "".join([*_ZH_DIGITS, *_ZH_SMALL_UNITS, *_ZH_BIG_UNITS])


def parse_chinese_number(numeral: str) -> int:
    """Value of a Chinese numeral, including colloquial forms.

    "三千五百" -> 3500, "两万" -> 20000, "三千五" -> 3500, "一万二" -> 12000,
    "十五" -> 15, "二零二四" -> 2024 (digit by digit when there is no unit).
    Raises ValueError on characters that are not numerals.
    """
    if not numeral or any(ch not in _ZH_NUM_CHARS for ch in numeral):
        raise ValueError(f"not a Chinese numeral: {numeral!r}")
    if all(ch in _ZH_DIGITS for ch in numeral):
        return int("".join(str(_ZH_DIGITS[ch]) for ch in numeral))
    total = section = current = 0
    last_unit = 0  # the unit just before a trailing bare digit ("三千五": 1000)
    for ch in numeral:
        if ch in _ZH_DIGITS:
            current = _ZH_DIGITS[ch]
            if ch in "零〇":
                last_unit = 0  # "三千零五" is 3005, not 3500
        elif ch in _ZH_SMALL_UNITS:
            unit = _ZH_SMALL_UNITS[ch]
            section += (current or 1) * unit
            current, last_unit = 0, unit
        else:
            unit = _ZH_BIG_UNITS[ch]
            total += (section + current) * unit
            section = current = 0
            last_unit = unit
    if current and last_unit >= 10 and numeral[-1] in _ZH_DIGITS:
        current *= last_unit // 10
    return total + section + current


_EN_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_EN_MULTIPLIERS = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "grand": 1000}
_EN_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_EN_NUMBER_WORD = "|".join(sorted([*_EN_UNITS, *_EN_MULTIPLIERS], key=len, reverse=True))
_EN_WORDS_RE = re.compile(
    rf"\b(?:a\s+(?=hundred|thousand|grand))?(?:(?:{_EN_NUMBER_WORD})(?:[\s-]+(?:and\s+)?|\b))+",
    re.IGNORECASE,
)


def parse_english_number(words: str) -> int:
    """Value of English number words: "two hundred and fifty" -> 250, "a thousand" -> 1000."""
    total = current = 0
    seen = False
    for word in re.split(r"[\s-]+", words.lower().strip()):
        if word in ("and", "") or (word == "a" and not seen):
            continue
        if word in _EN_UNITS:
            current += _EN_UNITS[word]
        elif word in _EN_MULTIPLIERS:
            mult = _EN_MULTIPLIERS[word]
            if mult == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * mult
                current = 0
        else:
            raise ValueError(f"not an English number: {words!r}")
        seen = True
    if not seen:
        raise ValueError(f"not an English number: {words!r}")
    return total + current


def _as_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


# --- patterns --------------------------------------------------------------------------------

_ARABIC = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_ZH_NUM = rf"[{_ZH_NUM_CHARS}]+"
_ZH_MAG = {"万": 10_000, "千": 1000, "百": 100, "亿": 100_000_000, "k": 1000, "K": 1000}

_ZH_CURRENCY = r"(?:块钱|块|元|人民币|rmb|RMB)"
_EN_CURRENCY = r"(?:dollars?|bucks|usd|yuan|rmb)"
_PAY_VERB_ZH = re.compile(r"(?:还|付|交|转|给|还款|欠)\s*$")
_PAY_VERB_EN = re.compile(r"\b(?:pay|paying|send|sending|transfer|owe|do|make)\s+$", re.I)

_ZH_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_ZH_WEEKDAY.update({str(i + 1): i for i in range(7)})
_EN_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_EN_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_EN_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})

_ZH_REL_DAYS = {"今天": 0, "今日": 0, "今晚": 0, "明天": 1, "明日": 1, "明早": 1,
                "后天": 2, "大后天": 3, "昨天": -1, "前天": -2}  # fmt: skip
_EN_REL_DAYS = {"today": 0, "tonight": 0, "tomorrow": 1, "day after tomorrow": 2,
                "yesterday": -1}  # fmt: skip

_YES_NO = {
    "zh": [
        ("没问题", True), ("没错", True), ("不是", False), ("不对", False), ("不要", False),
        ("不用", False), ("不行", False), ("没有", False), ("是的", True), ("可以", True),
        ("不", False), ("没", False), ("别", False), ("是", True), ("对", True),
        ("好", True), ("行", True), ("嗯", True),
    ],
    "en": [
        ("no problem", True), ("not a problem", True), ("of course", True), ("yes", True),
        ("yeah", True), ("yep", True), ("yup", True), ("sure", True), ("correct", True),
        ("okay", True), ("ok", True), ("absolutely", True), ("no", False), ("nope", False),
        ("nah", False), ("not", False), ("never", False),
    ],
}  # fmt: skip


@dataclass(slots=True)
class _Found:
    entities: list[Entity]

    def taken(self, start: int, end: int) -> bool:
        return any(e.start < end and start < e.end for e in self.entities)

    def add(self, label: str, text: str, start: int, end: int, value: EntityValue) -> None:
        if not self.taken(start, end):
            self.entities.append(Entity(label, text[start:end], start, end, value))


def extract_entities(text: str, language: str, today: date) -> list[Entity]:
    """All entities in `text`, ordered by position; dates resolve against `today`."""
    if language not in ("zh", "en"):
        raise ValueError(f"unsupported language {language!r} (expected 'zh' or 'en')")
    found = _Found([])
    if language == "zh":
        _zh_times(text, found)
        _zh_dates(text, today, found)
        _zh_numbers(text, found)
    else:
        _en_times(text, found)
        _en_dates(text, today, found)
        _en_numbers(text, found)
    _yes_no(text, language, found)
    return sorted(found.entities, key=lambda e: e.start)


def _yes_no(text: str, language: str, found: _Found) -> None:
    """The first polarity word decides; longest match first so "不是" beats "是"."""
    lowered = text.lower()
    for pos in range(len(lowered)):
        for term, value in _YES_NO[language]:
            if not lowered.startswith(term, pos):
                continue
            end = pos + len(term)
            if language == "en" and not _word_bounded(lowered, pos, end):
                continue
            if term == "嗯" and lowered.strip("嗯 ，。,.!！?？"):
                continue  # "嗯" is a filler unless it is the whole reply
            found.add("yes_no", text, pos, end, value)
            return


def _word_bounded(text: str, start: int, end: int) -> bool:
    before = start == 0 or not text[start - 1].isalnum()
    after = end == len(text) or not text[end].isalnum()
    return before and after


# --- Chinese ---------------------------------------------------------------------------------

_ZH_NUMBER_RE = re.compile(
    rf"(?P<cur>[¥￥])?\s*(?:(?P<arabic>{_ARABIC})\s*(?P<mag>[万千百亿kK])?|(?P<zh>{_ZH_NUM}))"
    rf"(?P<unit>\s*{_ZH_CURRENCY})?"
)
# A lone numeral character is usually a word ("一定", "一下", "一半"); keep it only before
# a measure word: a digit also before 分 (a score or a minute: "五分", "打八分吧"), but
# not "万分感谢".
_ZH_MEASURE = "元块万千百号日月点个天周次期笔"
_ZH_DIGIT_MEASURE = _ZH_MEASURE + "分"


def _zh_value(match: re.Match[str]) -> int | float | None:
    if match.group("zh"):
        numeral = match.group("zh")
        next_char = match.string[match.end("zh") : match.end("zh") + 1]
        measures = _ZH_DIGIT_MEASURE if numeral in _ZH_DIGITS else _ZH_MEASURE
        if len(numeral) == 1 and numeral not in _ZH_SMALL_UNITS and next_char not in measures:
            return None
        return parse_chinese_number(numeral)
    value = float(match.group("arabic").replace(",", ""))
    if match.group("mag"):
        value *= _ZH_MAG[match.group("mag")]
    return _as_number(value)


def _zh_numbers(text: str, found: _Found) -> None:
    for match in _ZH_NUMBER_RE.finditer(text):
        value = _zh_value(match)
        if value is None:
            continue
        # "给五分" is a score: a number before 分 is not money even after a paying verb.
        score = not match.group("unit") and text[match.end() : match.end() + 1] == "分"
        is_amount = bool(match.group("cur") or match.group("unit")) or (
            not score and bool(_PAY_VERB_ZH.search(text[: match.start()]))
        )
        number_group = "arabic" if match.group("arabic") else "zh"
        start = match.start() if match.group("cur") else match.start(number_group)
        found.add("amount" if is_amount else "number", text, start, match.end(), value)


_ZH_INT = rf"(?:\d{{1,2}}|[{_ZH_NUM_CHARS}]{{1,3}})"
_ZH_TIME_RE = re.compile(
    rf"(?P<part>早上|上午|中午|下午|晚上|凌晨|傍晚)?(?P<hour>{_ZH_INT})点"
    rf"(?:(?P<half>半)|(?P<quarter>一刻|三刻)|(?P<minute>{_ZH_INT})分?)?"
)


def _zh_int(token: str) -> int:
    return int(token) if token.isdigit() else parse_chinese_number(token)


def _zh_times(text: str, found: _Found) -> None:
    for m in _ZH_TIME_RE.finditer(text):
        hour = _zh_int(m.group("hour"))
        minute = 30 if m.group("half") else 0
        if m.group("quarter"):
            minute = 15 if m.group("quarter") == "一刻" else 45
        elif m.group("minute"):
            minute = _zh_int(m.group("minute"))
        if m.group("part") in ("下午", "晚上", "傍晚") and hour < 12:
            hour += 12
        if hour < 24 and minute < 60:
            found.add("time", text, m.start(), m.end(), f"{hour:02d}:{minute:02d}")


_ZH_DATE_RE = re.compile(
    rf"(?P<rel>大后天|后天|明天|明日|明早|今天|今日|今晚|昨天|前天)"
    rf"|(?P<wprefix>下下|下个?|这个?|本|上个?)?(?:周|星期|礼拜)(?P<wday>[一二三四五六日天末1-7])"
    rf"|(?P<mprefix>下个?|这个?|本)?月底"
    rf"|(?:(?P<month>{_ZH_INT})月)?(?P<day>{_ZH_INT})[号日]"
    rf"|(?P<ndays>{_ZH_INT})天(?:后|以后|之后|内|之内)|过(?P<after_days>{_ZH_INT})天"
    rf"|(?P<next_week>下周|下个?礼拜|下个?星期)"
)


def _zh_dates(text: str, today: date, found: _Found) -> None:
    for m in _ZH_DATE_RE.finditer(text):
        resolved = _zh_date_value(m, today)
        if resolved is not None:
            found.add("date", text, m.start(), m.end(), resolved.isoformat())


def _zh_date_value(m: re.Match[str], today: date) -> date | None:
    if m.group("rel"):
        return today + timedelta(days=_ZH_REL_DAYS[m.group("rel")])
    if m.group("wday"):
        prefix = m.group("wprefix") or ""
        weeks = {"下下": 2, "下": 1, "下个": 1, "上": -1, "上个": -1}.get(prefix, 0)
        return _weekday(today, _ZH_WEEKDAY[m.group("wday")], weeks)
    if m.group(0).endswith("月底"):
        months = 1 if (m.group("mprefix") or "").startswith("下") else 0
        return _month_end(today, months)
    if m.group("day"):
        month = _zh_int(m.group("month")) if m.group("month") else None
        return _day_of_month(today, _zh_int(m.group("day")), month)
    if m.group("ndays") or m.group("after_days"):
        return today + timedelta(days=_zh_int(m.group("ndays") or m.group("after_days")))
    return _weekday(today, 0, 1)  # "下周": Monday of next week


# --- English ---------------------------------------------------------------------------------

_EN_NUMBER_RE = re.compile(
    rf"(?P<cur>\$|¥|usd\s?|rmb\s?)?(?:(?P<arabic>{_ARABIC})(?P<mag>k\b)?|(?P<words>{_EN_WORDS_RE.pattern}))"
    rf"(?P<unit>\s*{_EN_CURRENCY}\b)?",
    re.IGNORECASE,
)


def _en_numbers(text: str, found: _Found) -> None:
    for m in _EN_NUMBER_RE.finditer(text):
        if m.group("words"):
            words = m.group("words").strip()
            if words.lower() in ("one", "a") or not _word_bounded(text, m.start("words"), m.end()):
                continue  # "no one here", "one more time" are not quantities
            try:
                value: int | float = parse_english_number(words)
            except ValueError:
                continue
        else:
            digits_end = m.end("mag") if m.group("mag") else m.end("arabic")
            if not _word_bounded(text, m.start("arabic"), digits_end):
                continue
            value = _as_number(float(m.group("arabic").replace(",", "")))
            if m.group("mag"):
                value *= 1000
        is_amount = bool(m.group("cur") or m.group("unit")) or bool(
            _PAY_VERB_EN.search(text[: m.start()])
        )
        end = m.end() if m.group("unit") else m.start() + len(m.group(0).rstrip())
        found.add("amount" if is_amount else "number", text, m.start(), end, value)


_EN_TIME_RE = re.compile(
    r"\b(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>a\.?m\.?|p\.?m\.?|o'?clock)(?=\W|$)"
    r"|\b(?P<hh>\d{1,2}):(?P<mm>\d{2})\b"
    r"|\b(?P<named>noon|midday|midnight)\b",
    re.IGNORECASE,
)


def _en_times(text: str, found: _Found) -> None:
    for m in _EN_TIME_RE.finditer(text):
        if m.group("named"):
            hour, minute = (0 if m.group("named").lower() == "midnight" else 12), 0
        elif m.group("hh"):
            hour, minute = int(m.group("hh")), int(m.group("mm"))
        else:
            hour, minute = int(m.group("hour")), int(m.group("minute") or 0)
            ampm = m.group("ampm").lower().replace(".", "")
            if ampm == "pm" and hour < 12:
                hour += 12
            elif ampm == "am" and hour == 12:
                hour = 0
        if hour < 24 and minute < 60:
            found.add("time", text, m.start(), m.end(), f"{hour:02d}:{minute:02d}")


_EN_WEEKDAY_ALT = "|".join(_EN_WEEKDAYS)
_EN_MONTH_ALT = "|".join(sorted(_EN_MONTHS, key=len, reverse=True))
_EN_ORD_ALT = "|".join(sorted(_EN_ORDINALS, key=len, reverse=True))
_EN_DAY = (
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|(?:twenty[\s-]|thirty[\s-])?(?:{_EN_ORD_ALT})"
    r"|twenty|thirty)"
)
_EN_DATE_RE = re.compile(
    r"\b(?:(?P<rel>day after tomorrow|today|tonight|tomorrow|yesterday)"
    rf"|(?P<wprefix>next|this|on|coming)?\s*(?P<wday>{_EN_WEEKDAY_ALT})"
    rf"|(?P<month>{_EN_MONTH_ALT})\.?\s+(?:the\s+)?(?P<mday>{_EN_DAY})"
    rf"|(?:the\s+)?(?P<dmday>{_EN_DAY})\s+of\s+(?P<dmonth>{_EN_MONTH_ALT})"
    rf"|the\s+(?P<day>{_EN_DAY})"
    r"|(?P<num_month>\d{1,2})/(?P<num_day>\d{1,2})"
    r"|in\s+(?P<ndays>\d+|a|one|two|three|four|five|six|seven|ten)\s+days?"
    r"|(?P<month_end>end of (?:the|this) month)"
    r"|(?P<next_week>next week))\b",
    re.IGNORECASE,
)


def _en_day(token: str) -> int:
    token = token.lower().replace("-", " ")
    digits = re.match(r"\d+", token)
    if digits:
        return int(digits.group(0))
    parts = token.split()
    if parts[-1] in ("twenty", "thirty"):
        return _EN_UNITS[parts[-1]]
    return sum(_EN_UNITS.get(p, 0) for p in parts[:-1]) + _EN_ORDINALS[parts[-1]]


def _en_dates(text: str, today: date, found: _Found) -> None:
    for m in _EN_DATE_RE.finditer(text):
        resolved = _en_date_value(m, today)
        if resolved is not None:
            start = m.start("wday") if m.group("wprefix") == "on" else m.start()
            found.add("date", text, start, m.end(), resolved.isoformat())


def _en_date_value(m: re.Match[str], today: date) -> date | None:
    if m.group("rel"):
        return today + timedelta(days=_EN_REL_DAYS[m.group("rel").lower()])
    if m.group("wday"):
        weeks = 1 if (m.group("wprefix") or "").lower() == "next" else 0
        return _weekday(today, _EN_WEEKDAYS[m.group("wday").lower()], weeks)
    if m.group("month"):
        return _month_day(today, _EN_MONTHS[m.group("month").lower()], _en_day(m.group("mday")))
    if m.group("dmonth"):
        return _month_day(today, _EN_MONTHS[m.group("dmonth").lower()], _en_day(m.group("dmday")))
    if m.group("day"):
        return _day_of_month(today, _en_day(m.group("day")), None)
    if m.group("num_month"):
        return _month_day(today, int(m.group("num_month")), int(m.group("num_day")))
    if m.group("ndays"):
        token = m.group("ndays").lower()
        days = int(token) if token.isdigit() else (1 if token == "a" else _EN_UNITS[token])
        return today + timedelta(days=days)
    if m.group("month_end"):
        return _month_end(today, 0)
    return _weekday(today, 0, 1)


# --- calendar helpers --------------------------------------------------------------------------


def _weekday(today: date, weekday: int, weeks_ahead: int) -> date:
    """`weeks_ahead` 0: next such day on or after today; otherwise that day N weeks on."""
    if weeks_ahead == 0:
        return today + timedelta(days=(weekday - today.weekday()) % 7)
    monday = today - timedelta(days=today.weekday())
    return monday + timedelta(weeks=weeks_ahead, days=weekday)


def _month_end(today: date, months_ahead: int) -> date:
    year, month = divmod(today.month - 1 + months_ahead, 12)
    year, month = today.year + year, month + 1
    return date(year, month, calendar.monthrange(year, month)[1])


def _day_of_month(today: date, day: int, month: int | None) -> date | None:
    if month is not None:
        return _month_day(today, month, day)
    for months_ahead in (0, 1, 2):
        year, m0 = divmod(today.month - 1 + months_ahead, 12)
        candidate = _safe_date(today.year + year, m0 + 1, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _month_day(today: date, month: int, day: int) -> date | None:
    candidate = _safe_date(today.year, month, day)
    if candidate is not None and candidate < today:
        candidate = _safe_date(today.year + 1, month, day)
    return candidate


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None
