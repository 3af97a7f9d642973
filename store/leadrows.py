"""Turning one CSV record into a lead row, or a reason to reject it (pure; runs in workers).

Everything here is CPU work on plain data, so the import can fan chunks of records out to a
process pool: phonenumbers parsing is the import's dominant cost.
"""

from __future__ import annotations

import json
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType, timezone

# Header names recognised (case-insensitive, surrounding blanks ignored).
PHONE_COLUMNS = ("phone", "phone_number", "number", "msisdn", "mobile", "telephone", "tel")
TIMEZONE_COLUMNS = ("timezone", "time_zone", "tz")
_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"", "0", "false", "no", "n", "f"})
_INT4 = 2**31
# Reused: json.dumps() with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False)

# (physical line where the record starts, its fields, whether its bytes were not UTF-8)
RawRecord = tuple[int, list[str], bool]
# (line, phone_e164, external_id, timezone, fields JSON, priority, consent)
LeadRow = tuple[int, str, str | None, str, str, int, bool]


@dataclass(frozen=True)
class Reject:
    line: int
    category: str  # short key for the summary, e.g. "bad_number"
    reason: str  # what the operator reads in the rejects file
    fields: list[str]


@dataclass(frozen=True)
class RowSpec:
    """Where each recognised column sits in the header; the rest are custom fields."""

    header: tuple[str, ...]
    region: str
    phone: int
    timezone: int | None
    external_id: int | None
    priority: int | None
    consent: int | None
    custom: tuple[tuple[int, str], ...]


def _find(names: list[str], wanted: tuple[str, ...]) -> int | None:
    return next((i for i, name in enumerate(names) if name in wanted), None)


def row_spec(header: list[str], region: str) -> RowSpec | None:
    """The layout of a header, or None when it has no phone column."""
    names = [h.strip().lower() for h in header]
    phone = _find(names, PHONE_COLUMNS)
    if phone is None:
        return None
    tz, ext = _find(names, TIMEZONE_COLUMNS), _find(names, ("external_id",))
    prio, consent = _find(names, ("priority",)), _find(names, ("consent",))
    known = {phone, tz, ext, prio, consent}
    custom = tuple((i, header[i].strip()) for i in range(len(header)) if i not in known)
    return RowSpec(tuple(header), region, phone, tz, ext, prio, consent, custom)


@dataclass(frozen=True)
class ChunkResult:
    leads: list[LeadRow]
    rejects: list[Reject]


class LeadError(ValueError):
    """Why one lead is refused: a short category, the reason, and the field at fault."""

    def __init__(self, category: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.category = category
        self.field = field  # phone, timezone, external_id, priority, consent, fields


def process_chunk(spec: RowSpec, records: list[RawRecord]) -> ChunkResult:
    """Validate and normalise a chunk of records (module-level so a process pool can run it)."""
    leads: list[LeadRow] = []
    rejects: list[Reject] = []
    for line, fields, bad_bytes in records:
        try:
            leads.append(_lead(spec, line, fields, bad_bytes))
        except LeadError as exc:
            rejects.append(Reject(line, exc.category, str(exc), fields))
    return ChunkResult(leads, rejects)


def _lead(spec: RowSpec, line: int, fields: list[str], bad_bytes: bool) -> LeadRow:
    if bad_bytes:
        raise LeadError("non_utf8", "the row has bytes that are not UTF-8")
    if len(fields) != len(spec.header):
        raise LeadError("column_count", f"expected {len(spec.header)} columns, found {len(fields)}")
    return (
        line,
        *normalise_lead(
            spec.region,
            fields[spec.phone],
            timezone=fields[spec.timezone] if spec.timezone is not None else None,
            external_id=fields[spec.external_id] if spec.external_id is not None else None,
            priority=fields[spec.priority] if spec.priority is not None else None,
            consent=fields[spec.consent] if spec.consent is not None else None,
            custom={name: fields[i] for i, name in spec.custom},
        ),
    )


def normalise_lead(
    region: str,
    phone: str,
    *,
    timezone: str | None,
    external_id: str | None,
    priority: str | None,
    consent: str | None,
    custom: dict[str, str],
) -> tuple[str, str | None, str, str, int, bool]:
    """One lead's values as written (CSV cells, or API values rendered as text) normalised:
    (phone_e164, external_id, timezone, fields JSON, priority, consent); LeadError if refused.

    The CSV import and the HTTP API both call this, so a lead is accepted by one exactly
    when the other accepts it.
    """
    raw_phone = phone.strip()
    if not raw_phone:
        raise LeadError("missing_phone", "the phone column is empty", "phone")
    e164, zones = normalise_number(raw_phone, region)
    tz = _given_timezone(timezone) if timezone is not None else None
    if tz is None:
        tz = _zone_for_number(zones)
    ext = None
    if external_id is not None:
        ext = external_id.strip() or None
    value = _priority(priority) if priority is not None else 0
    agreed = _consent(consent) if consent is not None else False
    fields_json = _ENCODER.encode(custom)
    if "\x00" in (ext or ""):
        raise LeadError("nul_byte", "the row contains a NUL character", "external_id")
    if "\x00" in fields_json:
        raise LeadError("nul_byte", "the row contains a NUL character", "fields")
    return (e164, ext, tz, fields_json, value, agreed)


def normalise_number(raw: str, region: str) -> tuple[str, tuple[str, ...] | None]:
    """E.164 form and candidate time zones (None when unknown); LeadError if not a number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        # str(exc) reads "(1) The string supplied did not seem to be a phone number."
        reason = str(exc).split(") ", 1)[-1].rstrip(".")
        raise LeadError("bad_number", f"not a phone number: {reason}", "phone") from exc
    # number_type() is UNKNOWN exactly when is_valid_number() is false; computing it once
    # serves both the validity check and the time zone lookup (it is the costly step).
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        raise LeadError("bad_number", "not a valid number for its country", "phone")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.is_number_type_geographical(kind, number.country_code):
        zones = tuple(timezone.time_zones_for_geographical_number(number))
    else:
        zones = _country_zones(number)
    return e164, None if zones == _UNKNOWN else zones


_UNKNOWN = (timezone.UNKNOWN_TIMEZONE,)
_country_cache: dict[int, tuple[str, ...]] = {}


def _country_zones(number: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    # Non-geographic numbers (most mobiles) get their country's zones: one lookup per country.
    code = number.country_code
    if code not in _country_cache:
        _country_cache[code] = tuple(timezone.time_zones_for_number(number))
    return _country_cache[code]


def _zone_for_number(zones: tuple[str, ...] | None) -> str:
    if zones is None:
        raise LeadError(
            "unknown_timezone",
            "no time zone is known for this number; add a timezone column",
            "timezone",
        )
    zone = _one_clock(zones)
    if zone is None:
        # Guessing here could mean calling at 6 a.m. local time: the operator must say.
        shown = ", ".join(zones[:3]) + (", ..." if len(zones) > 3 else "")
        raise LeadError(
            "ambiguous_timezone",
            f"the number spans {len(zones)} time zones ({shown}); add a timezone column",
            "timezone",
        )
    return zone


# Mid-winter and mid-summer instants: zones agreeing on both keep the same clock all year
# for calling-hours purposes (e.g. Europe/London and Europe/Jersey).
_PROBES = tuple(datetime(2025, month, 15, 12, tzinfo=UTC) for month in (1, 7))


@lru_cache(maxsize=4096)
def _one_clock(zones: tuple[str, ...]) -> str | None:
    """The first of `zones` if they all keep the same clock, else None."""
    known = [z for z in zones if _zone_exists(z)]
    offsets = {
        tuple(probe.astimezone(zoneinfo.ZoneInfo(z)).utcoffset() for probe in _PROBES)
        for z in known
    }
    return known[0] if len(offsets) == 1 else None


def _given_timezone(value: str) -> str | None:
    name = value.strip()
    if not name:
        return None
    if not _zone_exists(name):
        raise LeadError("bad_timezone", f"unknown time zone {name!r}", "timezone")
    return name


@lru_cache(maxsize=1024)
def _zone_exists(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _priority(value: str) -> int:
    text = value.strip()
    if not text:
        return 0
    try:
        priority = int(text)
    except ValueError as exc:
        raise LeadError(
            "bad_priority", f"priority {text!r} is not a whole number", "priority"
        ) from exc
    if not -_INT4 <= priority < _INT4:
        raise LeadError("bad_priority", f"priority {text!r} is out of range", "priority")
    return priority


def _consent(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise LeadError(
        "bad_consent", f"consent {value.strip()!r} is not yes/no/true/false/1/0", "consent"
    )
