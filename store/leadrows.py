"""Turning CSV bytes into lead rows, or reasons to reject them (pure; runs in workers).

Everything here is CPU work on plain data, so the import can fan chunks of the file's bytes out
to a process pool: decoding, CSV parsing and phonenumbers all happen in the workers, and each
lead comes back as one line of PostgreSQL COPY text.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberType, timezone

# Keep every compiled metadata pattern: number_type() looks up a dozen per number, and through
# re's own bounded cache that is a quarter of its cost (or recompiling, with many countries).
phonenumbers.enable_pattern_cache()

# Header names recognised: case, surrounding blanks and inner blanks or hyphens do not matter
# ("Phone Number", "phone-number" and "PHONE_NUMBER" are all phone_number).
PHONE_COLUMNS = ("phone", "phone_number", "number", "msisdn", "mobile", "telephone", "tel")
TIMEZONE_COLUMNS = ("timezone", "time_zone", "tz")
_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"", "0", "false", "no", "n", "f"})
_INT4 = 2**31
# Reused: json.dumps() with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False)

# The columns of a lead's COPY text line, in order (campaign_id is added by the importer).
COPY_COLUMNS = ("phone_e164", "external_id", "timezone", "fields", "priority", "consent")

# (physical line where the record starts, its fields, whether its bytes were not UTF-8)
RawRecord = tuple[int, list[str], bool]
# (line, phone_e164, external_id, COPY text line of COPY_COLUMNS ending in a newline)
LeadRow = tuple[int, str, str | None, str]


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
    delimiter: str
    phone: int
    timezone: int | None
    external_id: int | None
    priority: int | None
    consent: int | None
    custom: tuple[tuple[int, str], ...]
    # Fields the campaign's script cannot run without: a row lacking one is refused.
    required: tuple[str, ...] = ()


def known_region(region: str) -> str:
    """`region` upper-cased when phonenumbers knows it; ValueError otherwise."""
    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {region!r} (expected a code like US, GB, CN)")
    return region.upper()


def _find(names: list[str], wanted: tuple[str, ...]) -> int | None:
    return next((i for i, name in enumerate(names) if name in wanted), None)


_NAME_SEPARATORS = re.compile(r"[\s\-]+")


def column_key(name: str) -> str:
    """How a header name is matched: `Phone Number` -> `phone_number`."""
    return _NAME_SEPARATORS.sub("_", name.strip().lower())


def sniff_delimiter(sample: str) -> str:
    """The field separator of a CSV sample: `,` `;` tab or `|` (`,` when it cannot tell)."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:  # e.g. one column only: nothing to separate
        return ","


def row_spec(header: list[str], region: str, delimiter: str = ",") -> RowSpec | None:
    """The layout of a header, or None when it has no phone column."""
    names = [column_key(h) for h in header]
    phone = _find(names, PHONE_COLUMNS)
    if phone is None:
        return None
    tz, ext = _find(names, TIMEZONE_COLUMNS), _find(names, ("external_id",))
    prio, consent = _find(names, ("priority",)), _find(names, ("consent",))
    known = {phone, tz, ext, prio, consent}
    custom = tuple((i, header[i].strip()) for i in range(len(header)) if i not in known)
    return RowSpec(tuple(header), region, delimiter, phone, tz, ext, prio, consent, custom)


@dataclass(frozen=True)
class ChunkResult:
    leads: list[LeadRow]
    rejects: list[Reject]


class RecordError(ValueError):
    """The CSV itself is broken at `line` (e.g. a field over csv.field_size_limit())."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line

    def __reduce__(self) -> tuple[type[RecordError], tuple[int, str]]:
        # Raised in workers: the line must survive pickling back to the importer.
        return (RecordError, (self.line, str(self)))


def read_records(
    lines: Iterable[bytes], first_line: int, delimiter: str = ","
) -> Iterator[RawRecord]:
    """The non-blank CSV records of `lines` (physical lines, first one numbered `first_line`)."""
    bad_lines: set[int] = set()
    line_no = first_line - 1

    def decoded() -> Iterator[str]:
        nonlocal line_no
        for raw in lines:
            line_no += 1
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                # Keep the row readable (and writable back byte for byte) but mark it.
                bad_lines.add(line_no)
                yield raw.decode("utf-8", "surrogateescape")

    reader = csv.reader(decoded(), delimiter=delimiter)
    last = first_line - 1
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as exc:
            # Only a field over csv.field_size_limit() gets here: not a leads file.
            raise RecordError(last + 1, str(exc)) from exc
        if fields is None:
            return
        first, last = last + 1, first_line - 1 + reader.line_num
        if fields:
            bad = bool(bad_lines) and any(n in bad_lines for n in range(first, last + 1))
            yield (first, fields, bad)


class LeadError(ValueError):
    """Why one lead is refused: a short category, the reason, and the field at fault."""

    def __init__(self, category: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.category = category
        self.field = field  # phone, timezone, external_id, priority, consent, fields


def process_chunk(spec: RowSpec, first_line: int, data: bytes) -> ChunkResult:
    """Validate and normalise the whole records in `data` (module-level for a process pool)."""
    leads: list[LeadRow] = []
    rejects: list[Reject] = []
    # Iterating a binary stream splits lines exactly as iterating the file does (on b"\n").
    for line, fields, bad_bytes in read_records(io.BytesIO(data), first_line, spec.delimiter):
        try:
            leads.append(_lead(spec, line, fields, bad_bytes))
        except LeadError as exc:
            rejects.append(Reject(line, exc.category, str(exc), fields))
    return ChunkResult(leads, rejects)


def _lead(spec: RowSpec, line: int, fields: list[str], bad_bytes: bool) -> LeadRow:
    if bad_bytes:
        raise LeadError("non_utf8", "the row has bytes that are not UTF-8")
    if len(fields) != len(spec.header):
        fields = _short_row_filled(spec, fields)
    phone, ext, tz, fields_json, priority, consent = normalise_lead(
        spec.region,
        fields[spec.phone],
        timezone=fields[spec.timezone] if spec.timezone is not None else None,
        external_id=fields[spec.external_id] if spec.external_id is not None else None,
        priority=fields[spec.priority] if spec.priority is not None else None,
        consent=fields[spec.consent] if spec.consent is not None else None,
        custom={name: fields[i] for i, name in spec.custom},
    )
    if spec.required:
        check_required(spec.required, {name: fields[i] for i, name in spec.custom})
    text = (
        f"{phone}\t{_copy_escape(ext) if ext is not None else _COPY_NULL}\t{_copy_escape(tz)}\t"
        f"{_copy_escape(fields_json)}\t{priority}\t{'t' if consent else 'f'}\n"
    )
    return (line, phone, ext, text)


def _short_row_filled(spec: RowSpec, fields: list[str]) -> list[str]:
    """A row shorter than the header, as spreadsheets write trailing empty cells: read it
    with those cells empty when it has the phone. Longer rows are refused (a stray comma)."""
    expected = len(spec.header)
    if len(fields) > expected:
        raise LeadError("column_count", f"expected {expected} columns, found {len(fields)}")
    if spec.phone >= len(fields):
        raise LeadError(
            "missing_phone", f"the row has {len(fields)} of {expected} columns and no phone"
        )
    return fields + [""] * (expected - len(fields))


def missing_fields(required: Iterable[str], fields: dict[str, object]) -> list[str]:
    """The required fields that are absent, null or blank (the dialog engine could not fill
    the script's template with them)."""
    return [name for name in required if not str(fields.get(name) or "").strip()]


def check_required(required: Iterable[str], fields: dict[str, object]) -> None:
    """LeadError `missing_field` naming the first required field the lead lacks."""
    missing = missing_fields(required, fields)
    if missing:
        raise LeadError(
            "missing_field",
            f"{missing[0]} is absent or blank, and the campaign's script needs it",
            "fields",
        )


# COPY text format: backslash, tab, newline and carriage return are escaped; \N is NULL.
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NULL = "\\N"


def _copy_escape(value: str) -> str:
    # Searching first: most values need no escape, and translate() is the slower scan.
    return value if _COPY_SPECIAL.search(value) is None else value.translate(_COPY_ESCAPES)


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
    if "\x00" in (ext or ""):
        raise LeadError("nul_byte", "the row contains a NUL character", "external_id")
    # Checked before encoding: JSON writes NUL as \u0000, which jsonb refuses.
    if "\x00" in "".join(custom.values()) or "\x00" in "".join(custom):
        raise LeadError("nul_byte", "the row contains a NUL character", "fields")
    fields_json = _ENCODER.encode(custom)
    return (e164, ext, tz, fields_json, value, agreed)


def normalise_number(raw: str, region: str) -> tuple[str, tuple[str, ...] | None]:
    """E.164 form and candidate time zones (None when unknown); LeadError if not a number."""
    number = plain_parse(raw, region)
    if number is None:
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


# -- plainly written numbers ------------------------------------------------------------------
#
# phonenumbers.parse() spends most of its time in a general front end: finding the number in
# free text, extensions, letters, RFC 3966, Unicode digits. A number written with ASCII digits
# and the separators below only, with at most one leading "+", has none of these: parse()
# reads it exactly as it reads its bare digits (every one of its extension patterns needs a
# character outside this alphabet; nothing is trimmed from a string that starts with "+", "("
# or a digit and ends with a digit; with 3+ digits the string is "viable"). From the bare
# digits, parse() then does what plain_parse() does below, as long as none of the rarer steps
# applies: an international dialling prefix, the region's own country code written without
# "+", a national (trunk) prefix, or a length out of bounds. plain_parse() hands every such
# number back to parse() itself. test_leadrows.py checks plain_parse() against parse() field by
# field, over every region's example numbers written in many ways.
_PLAIN = re.compile(r"\+?\(?[0-9](?:[0-9 ().\-]*[0-9])?")
_SEPARATORS = str.maketrans("", "", "+ ().-")
_PLAIN_MAX_CHARS = 64  # far below parse()'s own 250-character limit
_NSN_LENGTHS = range(2, 18)  # parse() refuses national numbers outside 2..17 digits
_CALLING_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@dataclass(frozen=True)
class _Plan:
    """What parse() consults in one numbering plan's metadata for a plain number."""

    country_code: int
    country_digits: str  # the code as written, e.g. "44"
    idd: re.Pattern[str] | None  # international dialling prefix ("011" in the US)
    national_prefix: re.Pattern[str] | None  # trunk prefix, e.g. "0" in GB


def _plan(metadata: PhoneMetadata) -> _Plan:
    def compiled(pattern: str | None) -> re.Pattern[str] | None:
        return re.compile(pattern) if pattern else None

    return _Plan(
        metadata.country_code,
        str(metadata.country_code),
        compiled(metadata.international_prefix),
        compiled(metadata.national_prefix_for_parsing),
    )


@cache
def _region_plan(region: str) -> _Plan | None:
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None  # parse() treats the region specially: let it decide
    return _plan(PhoneMetadata.metadata_for_region(region))


@cache
def _calling_code_plan(code: str) -> _Plan:
    # The metadata parse() switches to once it has read "+<code>".
    country_code = int(code)
    main_region = phonenumbers.region_code_for_country_code(country_code)
    return _plan(PhoneMetadata.metadata_for_region_or_calling_code(country_code, main_region))


def plain_parse(raw: str, region: str) -> PhoneNumber | None:
    """phonenumbers.parse(raw, region) for a plainly written number; None to ask parse()."""
    if len(raw) > _PLAIN_MAX_CHARS or _PLAIN.fullmatch(raw) is None:
        return None
    digits = raw.translate(_SEPARATORS)
    region_plan = _region_plan(region)
    if len(digits) < 3 or region_plan is None:
        return None
    if raw[0] == "+":
        # The country code is the first 1-3 digits naming one; none starts with 0.
        code = next((digits[:n] for n in (1, 2, 3) if digits[:n] in _CALLING_CODES), None)
        if code is None:
            return None
        plan, national = _calling_code_plan(code), digits[len(code) :]
    else:
        if region_plan.idd is not None and region_plan.idd.match(digits):
            return None
        if digits.startswith(region_plan.country_digits):
            return None
        plan, national = region_plan, digits
    if len(national) not in _NSN_LENGTHS:
        return None
    if plan.national_prefix is not None and plan.national_prefix.match(national):
        return None
    number = PhoneNumber(country_code=plan.country_code, national_number=int(national))
    if len(national) > 1 and national[0] == "0":
        # As parse() records them: the zeros int() drops, all but a last digit that is 0.
        number.italian_leading_zero = True
        zeros = min(len(national) - len(national.lstrip("0")), len(national) - 1)
        if zeros != 1:
            number.number_of_leading_zeros = zeros
    return number


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
