"""PII redaction for logs and stored transcripts.

`redact(text)` replaces, in this order of precedence when spans overlap:
- Chinese resident ID numbers (18 characters, valid birth date, ISO 7064 MOD 11-2 check digit);
- bank card numbers (13-19 digits, optionally grouped by spaces or dashes, Luhn-valid);
- e-mail addresses;
- phone numbers (phonenumbers' PhoneNumberMatcher for the given regions, plus CN mobile
  numbers written inside Chinese text, where the matcher needs surrounding spaces).

Ordinary numbers (amounts such as "3500", "1,200.50", "¥35,000") match none of these and are
left alone. The result never contains the raw values: hits carry only kind and offsets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import phonenumbers

PLACEHOLDERS = {"cn_id": "[ID]", "bank_card": "[CARD]", "email": "[EMAIL]", "phone": "[PHONE]"}
_PRIORITY = {"cn_id": 0, "bank_card": 1, "email": 2, "phone": 3}


@dataclass(frozen=True, slots=True)
class PiiHit:
    kind: str  # cn_id | bank_card | email | phone
    start: int  # offsets into the original text
    end: int


@dataclass(frozen=True, slots=True)
class RedactionResult:
    text: str
    hits: tuple[PiiHit, ...]


_CN_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx])(?![0-9A-Za-z])")
_CN_ID_WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]
_CARD_RE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CN_MOBILE_RE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")


def cn_id_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("expected exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _CN_ID_WEIGHTS, strict=True))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def is_valid_cn_id(number: str) -> bool:
    """18-character resident ID with a real birth date and a correct check character."""
    if not _CN_ID_RE.fullmatch(number):
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return cn_id_check_digit(number[:17]) == number[17].upper()


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _cn_ids(text: str) -> list[PiiHit]:
    return [PiiHit("cn_id", m.start(1), m.end(1)) for m in _CN_ID_RE.finditer(text)
            if is_valid_cn_id(m.group(1))]  # fmt: skip


def _cards(text: str) -> list[PiiHit]:
    hits = []
    for m in _CARD_RE.finditer(text):
        digits = re.sub(r"[ -]", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            hits.append(PiiHit("bank_card", m.start(), m.end()))
    return hits


def _emails(text: str) -> list[PiiHit]:
    return [PiiHit("email", m.start(), m.end()) for m in _EMAIL_RE.finditer(text)]


def _phones(text: str, regions: Sequence[str]) -> list[PiiHit]:
    hits = [PiiHit("phone", m.start(), m.end()) for m in _CN_MOBILE_RE.finditer(text)]
    for region in regions:
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {region!r} (expected e.g. 'CN' or 'US')")
        leniency = phonenumbers.Leniency.VALID
        matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency)
        hits.extend(PiiHit("phone", m.start, m.end) for m in matcher)
    return hits


def find_pii(text: str, regions: Sequence[str] = ("CN", "US")) -> tuple[PiiHit, ...]:
    """Non-overlapping PII spans, by position; the stronger kind wins an overlap."""
    candidates = _cn_ids(text) + _cards(text) + _emails(text) + _phones(text, regions)
    candidates.sort(key=lambda h: (_PRIORITY[h.kind], h.start, -(h.end - h.start)))
    chosen: list[PiiHit] = []
    for hit in candidates:
        if all(hit.end <= c.start or c.end <= hit.start for c in chosen):
            chosen.append(hit)
    return tuple(sorted(chosen, key=lambda h: h.start))


def redact(text: str, regions: Sequence[str] = ("CN", "US")) -> RedactionResult:
    """`text` with every PII span replaced by a placeholder such as "[PHONE]"."""
    hits = find_pii(text, regions)
    pieces: list[str] = []
    cursor = 0
    for hit in hits:
        pieces += [text[cursor : hit.start], PLACEHOLDERS[hit.kind]]
        cursor = hit.end
    pieces.append(text[cursor:])
    return RedactionResult("".join(pieces), hits)
