"""Lead import against a real PostgreSQL: every row imported, a counted duplicate or rejected."""

from __future__ import annotations

import asyncio
import csv
import shutil
import threading
from pathlib import Path

import asyncpg
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as pn_timezone

from store.campaigns import ensure_campaign
from store.leadrows import normalise_number
from store.leads import (
    CampaignNotFoundError,
    ImportSummary,
    LeadImportError,
    import_leads,
    rejects_path,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "leads"

# line -> reject category, for tests/fixtures/leads/mixed.csv (see make_mixed_csv.py).
MIXED_REJECTS = {
    5: "bad_number",
    6: "bad_number",
    7: "missing_phone",
    9: "column_count",
    11: "non_utf8",
    12: "bad_timezone",
    14: "bad_priority",
    15: "bad_consent",
    16: "duplicate_external_id",
    21: "ambiguous_timezone",
}
# phone -> (external_id, timezone, priority, consent, custom fields)
MIXED_IMPORTED = {
    "+12015550123": ("E1", "America/New_York", 1, True, {"name": "Ann", "plan": "gold"}),
    "+442079460958": ("E2", "Europe/London", 0, False, {"name": "Bob", "plan": "silver"}),
    "+821023456789": ("E3", "Asia/Seoul", 5, True, {"name": "Chul", "plan": "gold"}),
    "+13125550199": ("E7", "America/Chicago", 0, False, {"name": "Gus", "plan": ""}),
    "+861065529988": ("E15", "Asia/Shanghai", 0, False, {"name": "Pat\nand Sam", "plan": ""}),
    "+18005550199": ("E18", "America/Denver", 0, False, {"name": "Sue", "plan": ""}),
}


def _accounted(summary: ImportSummary) -> int:
    return (
        summary.imported + summary.duplicates_in_file + summary.duplicates_in_db + summary.rejected
    )


def _read_rejects(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
        return list(csv.reader(f))


@pytest.fixture
async def campaign(db_pool: asyncpg.Pool) -> int:
    async with db_pool.acquire() as conn:
        return await ensure_campaign(conn, "spring", "collections_v1")


@pytest.fixture
def mixed_csv(tmp_path: Path) -> Path:
    return Path(shutil.copy(FIXTURES / "mixed.csv", tmp_path / "mixed.csv"))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chunk_rows", [1, 3, 4_000])  # chunks end inside the 2-line record
async def test_every_row_of_a_messy_file_is_accounted_for(
    db_pool: asyncpg.Pool, campaign: int, mixed_csv: Path, workers: int, chunk_rows: int
) -> None:
    await db_pool.execute(
        "INSERT INTO leads (campaign_id, phone_e164, timezone) VALUES ($1, $2, $3)",
        campaign, "+12025550147", "America/New_York",
    )  # fmt: skip
    async with db_pool.acquire() as conn:
        summary = await import_leads(
            conn, mixed_csv, campaign="spring", region="US", workers=workers,
            chunk_rows=chunk_rows,
        )  # fmt: skip
    assert summary.rows == 19  # 21 lines after the header: one blank, one record spans two
    assert (summary.imported, summary.duplicates_in_file, summary.duplicates_in_db) == (6, 2, 1)
    assert summary.rejected == len(MIXED_REJECTS)
    assert _accounted(summary) == summary.rows

    rows = await db_pool.fetch(
        "SELECT phone_e164, external_id, timezone, priority, consent, fields FROM leads "
        "WHERE campaign_id = $1 AND phone_e164 <> '+12025550147'",
        campaign,
    )
    assert {r["phone_e164"]: tuple(r)[1:] for r in rows} == MIXED_IMPORTED

    assert summary.rejects_file == str(mixed_csv.with_name("mixed.rejects.csv"))
    header, *rejected = _read_rejects(Path(summary.rejects_file))
    assert header == ["line", "reason", "external_id", "name", "phone", "priority", "consent",
                      "timezone", "plan"]  # fmt: skip
    # Duplicates are written too (line 10 repeats line 2's number, line 13 line 8's; line 20's
    # is already in the campaign), but counted apart from the rejected rows.
    assert sorted(int(r[0]) for r in rejected) == sorted([*MIXED_REJECTS, 10, 13, 20])
    by_line = {int(r[0]): r for r in rejected}
    assert by_line[10][1] == "duplicate_in_file: the number is already on line 2"
    assert by_line[20][1] == "duplicate_in_campaign: the number is already in this campaign"
    assert by_line[20][2:5] == ["E16", "Quinn", "+1 202 555 0147"]
    assert by_line[5][1].startswith("bad_number: ")
    assert summary.reject_reasons == {
        c: list(MIXED_REJECTS.values()).count(c) for c in set(MIXED_REJECTS.values())
    }
    assert by_line[16][2:4] == ["E1", "Oli"]  # the row as it was, after line and reason
    assert "line 2" in by_line[16][1]
    assert "Mars/Olympus" in by_line[12][1]
    assert "expected 7 columns, found 8" in by_line[9][1]  # a short row (line 8) is read
    # The non-UTF-8 row is written back byte for byte.
    written = await asyncio.to_thread(Path(summary.rejects_file).read_bytes)
    assert b"E10,Jos\xe9,+1 650 253 0000" in written


async def test_importing_again_adds_nothing(
    db_pool: asyncpg.Pool, campaign: int, mixed_csv: Path
) -> None:
    async with db_pool.acquire() as conn:
        first = await import_leads(conn, mixed_csv, campaign="spring", region="US")
        again = await import_leads(conn, mixed_csv, campaign="spring", region="US")
    assert first.imported == 7
    assert (again.imported, again.duplicates_in_db, again.rejected) == (0, 7, first.rejected)
    assert _accounted(again) == again.rows
    assert await db_pool.fetchval("SELECT count(*) FROM leads") == 7


async def test_region_reads_national_numbers(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path
) -> None:
    path = tmp_path / "uk.csv"
    path.write_text("Phone,Account\n020 7946 0958,A-1\n07700 900 123x,A-2\n", encoding="utf-8")
    async with db_pool.acquire() as conn:
        summary = await import_leads(conn, path, campaign="spring", region="gb")
    assert (summary.imported, summary.rejected) == (1, 1)
    row = await db_pool.fetchrow("SELECT phone_e164, timezone, fields FROM leads")
    assert tuple(row) == ("+442079460958", "Europe/London", {"Account": "A-1"})


async def test_a_clean_file_leaves_no_rejects_file(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path
) -> None:
    path = tmp_path / "clean.csv"
    stale = rejects_path(path)
    stale.write_text("line,reason\n9,left from an earlier run\n")
    path.write_bytes(b"\xef\xbb\xbfphone\r\n+12015550123\r\n+14155552671\r\n")  # BOM, CRLF
    async with db_pool.acquire() as conn:
        summary = await import_leads(conn, path, campaign="spring", region="US")
    assert (summary.rows, summary.imported, summary.rejected) == (2, 2, 0)
    assert summary.rejects_file is None
    assert not stale.exists()


async def test_ensure_campaign_creates_once(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        first = await ensure_campaign(conn, "autumn", "survey")
        second = await ensure_campaign(conn, "autumn", "other-script")
    assert first == second
    row = await db_pool.fetchrow("SELECT script_name, status FROM campaigns WHERE id = $1", first)
    assert tuple(row) == ("survey", "active")


async def test_missing_campaign_is_refused(db_pool: asyncpg.Pool, mixed_csv: Path) -> None:
    async with db_pool.acquire() as conn:
        with pytest.raises(CampaignNotFoundError, match="no campaign named 'nope'"):
            await import_leads(conn, mixed_csv, campaign="nope", region="US")
    assert not rejects_path(mixed_csv).exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"name,email\nAnn,a@example.com\n", "no phone column"),
        (b"phone,Phone\n+12015550123,x\n", "repeated column names: phone"),
        (b"ph\xf6ne\n+12015550123\n", "the header is not UTF-8"),
    ],
)
async def test_unusable_files_are_refused(
    pg_admin_url: str, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    # The server's admin database has no outdial tables: reaching them would fail otherwise,
    # so this also shows that the file is checked before the database is touched.
    conn = await asyncpg.connect(pg_admin_url)
    try:
        with pytest.raises(LeadImportError, match=message):
            await import_leads(conn, path, campaign="spring", region="US")
    finally:
        await conn.close()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("quote", [b"", b'"'])
async def test_a_monstrous_field_stops_the_import_with_its_line(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path, workers: int, quote: bytes
) -> None:
    path = tmp_path / "huge.csv"
    huge = quote + b"x" * 200_000 + quote
    path.write_bytes(b"phone,note\n+12015550123,ok\n+14155552671," + huge + b"\n")
    async with db_pool.acquire() as conn:
        with pytest.raises(LeadImportError, match="huge.csv:3: field larger than field limit"):
            await import_leads(conn, path, campaign="spring", region="US", workers=workers)


async def test_missing_file_and_bad_region_are_refused(
    pg_admin_url: str, tmp_path: Path, mixed_csv: Path
) -> None:
    conn = await asyncpg.connect(pg_admin_url)
    try:
        with pytest.raises(LeadImportError, match="no such file"):
            await import_leads(conn, tmp_path / "absent.csv", campaign="spring", region="US")
        with pytest.raises(LeadImportError, match="is a directory"):
            await import_leads(conn, tmp_path, campaign="spring", region="US")
        with pytest.raises(LeadImportError, match="unknown region 'XX'"):
            await import_leads(conn, mixed_csv, campaign="spring", region="XX")
    finally:
        await conn.close()


# Numbers as operators' files hold them -> (E.164, time zone) when imported, else the reject
# category. Plainly written ones take the import's shortcut past phonenumbers.parse(), the
# others parse() itself; either way the outcome is phonenumbers' (checked below as well).
TRICKY_NUMBERS: list[tuple[str, str, tuple[str, str] | str]] = [
    ("(201) 555-0123", "", ("+12015550123", "America/New_York")),
    ("  +44 20 7946 0958  ", "", ("+442079460958", "Europe/London")),
    ("+1 201-555-0124 x12", "", ("+12015550124", "America/New_York")),  # extension dropped
    ("011 44 20 7946 0959", "", ("+442079460959", "Europe/London")),  # dialled from the US
    ("1-312-555-0199", "", ("+13125550199", "America/Chicago")),
    ("+44 (0) 161 496 0003", "", ("+441614960003", "Europe/London")),
    ("+39 02 1234 5678", "", ("+390212345678", "Europe/Rome")),  # Italian leading zero
    ("＋８２ １０-２３４５-６７８９", "", ("+821023456789", "Asia/Seoul")),
    ("+54 9 11 1234 5678", "", ("+5491112345678", "America/Buenos_Aires")),
    ("+1 204 555 0123", "", ("+12045550123", "America/Winnipeg")),  # Canada, under +1
    ("(208) 555-0100", "", "ambiguous_timezone"),  # Idaho: Mountain and Pacific
    ("+1 (208) 555-0101", "America/Boise", ("+12085550101", "America/Boise")),
    ("+1 800 555 0199", "", "ambiguous_timezone"),
    ("+7 912 345 6789", "", "ambiguous_timezone"),
    ("+800 1234 5678", "", "unknown_timezone"),
    ("(201) 555-01234", "", "bad_number"),  # a digit too many
    ("+44 7700 900123", "", "bad_number"),  # parses, but no such number in the UK plan
    ("+1 555 0100", "", "bad_number"),
    ("555-12", "", "bad_number"),
]


@pytest.mark.parametrize("workers", [1, 2])
async def test_tricky_numbers_come_out_as_phonenumbers_says(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path, workers: int
) -> None:
    path = tmp_path / "tricky.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "timezone"])
        writer.writerows([raw, tz] for raw, tz, _ in TRICKY_NUMBERS)
    async with db_pool.acquire() as conn:
        summary = await import_leads(
            conn, path, campaign="spring", region="US", workers=workers, chunk_rows=4
        )
    stored = {r["phone_e164"]: r["timezone"] for r in await db_pool.fetch("SELECT * FROM leads")}
    rejected = {int(r[0]) for r in _read_rejects(rejects_path(path))[1:]}
    for line, (raw, _, outcome) in enumerate(TRICKY_NUMBERS, start=2):
        if isinstance(outcome, tuple):
            e164, tz = outcome
            assert stored.pop(e164) == tz, raw
            number = phonenumbers.parse(raw, "US")
            assert phonenumbers.is_valid_number(number)
            assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == e164
        else:
            assert line in rejected, raw
    assert not stored
    assert summary.reject_reasons == {
        "ambiguous_timezone": 3, "unknown_timezone": 1, "bad_number": 4,
    }  # fmt: skip
    assert _accounted(summary) == summary.rows == len(TRICKY_NUMBERS)


# Quoted fields over several lines, doubled quotes, CRLF, a blank line, a quote inside an
# unquoted field, a multi-line record with bytes that are not UTF-8, and characters that COPY
# text must escape (tab, backslash, newline): wherever the chunks are cut.
QUOTED_CSV = (
    b'"phone","note","external_id"\r\n'
    b'"+1 201 555 0123","line one\r\nline two","a1"\r\n'  # lines 2-3
    b"\r\n"
    b'"+1 201 555 0124","say ""hi"", then ""bye""","a2"\r\n'  # line 5
    b"+1 201 555 0125,5'11\" tall,a3\r\n"
    b'"+1 201 555 0126","Jos\xe9\n\nstill Jos\xe9","a4"\r\n'  # lines 7-9
    b'"+1 201 555 0127","","a1"\r\n'  # line 10
    b'"12345","x","a5"\r\n'
    b'"+1 201 555 0128","tab\there, back\\slash","a\\6"'  # line 12, no final newline
)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chunk_rows", [1, 2, 4_000])
async def test_quoted_records_over_several_lines_survive_chunking(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path, workers: int, chunk_rows: int
) -> None:
    path = tmp_path / "quoted.csv"
    path.write_bytes(QUOTED_CSV)
    async with db_pool.acquire() as conn:
        summary = await import_leads(
            conn, path, campaign="spring", region="US", workers=workers, chunk_rows=chunk_rows
        )
    assert (summary.rows, summary.imported, summary.rejected) == (7, 4, 3)
    rows = await db_pool.fetch("SELECT external_id, phone_e164, fields FROM leads")
    assert {r["external_id"]: (r["phone_e164"], r["fields"]["note"]) for r in rows} == {
        "a1": ("+12015550123", "line one\r\nline two"),
        "a2": ("+12015550124", 'say "hi", then "bye"'),
        "a3": ("+12015550125", "5'11\" tall"),
        "a\\6": ("+12015550128", "tab\there, back\\slash"),
    }
    header, *rejected = _read_rejects(rejects_path(path))
    assert [(r[0], r[1].split(":")[0]) for r in rejected] == [
        ("7", "non_utf8"), ("10", "duplicate_external_id"), ("11", "bad_number"),
    ]  # fmt: skip
    assert summary.reject_reasons == {"non_utf8": 1, "duplicate_external_id": 1, "bad_number": 1}
    assert rejected[1][2:] == ["+1 201 555 0127", "", "a1"]  # the row as it was
    written = await asyncio.to_thread(rejects_path(path).read_bytes)
    assert b"Jos\xe9\n\nstill Jos\xe9" in written


async def test_a_nul_in_a_custom_field_rejects_the_row_not_the_file(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path
) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"phone,note\n+12015550123,a\x00b\n+12015550124,fine\n")
    async with db_pool.acquire() as conn:
        summary = await import_leads(conn, path, campaign="spring", region="US")
    assert (summary.imported, summary.reject_reasons) == (1, {"nul_byte": 1})


async def test_a_lead_stored_during_a_first_import_is_counted_not_lost(
    db_pool: asyncpg.Pool, pg_url: str, campaign: int, tmp_path: Path
) -> None:
    # A first import COPYs straight into `leads`. A lead stored meanwhile (through the API, by
    # another import) makes that COPY fail; the batch then goes through ON CONFLICT instead.
    path = tmp_path / "first.csv"
    path.write_text("phone\n+12015550123\n+12015550124\n+12015550125\n", encoding="utf-8")

    async def store_one_lead() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(
                "INSERT INTO leads (campaign_id, phone_e164, timezone) VALUES ($1, $2, $3)",
                campaign, "+12015550124", "America/New_York",
            )  # fmt: skip
        finally:
            await conn.close()

    def meanwhile(done: int, total: int) -> None:
        # Called once the file is being read, before anything is written; the lead is stored
        # before this returns (its own thread and event loop: this one is busy importing).
        if not threads:
            threads.append(threading.Thread(target=asyncio.run, args=(store_one_lead(),)))
            threads[0].start()
            threads[0].join()

    threads: list[threading.Thread] = []
    async with db_pool.acquire() as conn:
        summary = await import_leads(conn, path, campaign="spring", region="US", progress=meanwhile)
    assert threads
    assert (summary.imported, summary.duplicates_in_db) == (2, 1)
    assert await db_pool.fetchval("SELECT count(*) FROM leads") == 3


# The shortcut in normalise_number (one number_type() for validity and zones) must agree with
# phonenumbers' own is_valid_number() and time_zones_for_number(). Numbers are drawn around
# each region's example numbers so that many are valid, plus free digit strings.
_TYPES = [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE,
          phonenumbers.PhoneNumberType.TOLL_FREE]  # fmt: skip
_REGIONS = ["US", "CA", "GB", "DE", "CN", "KR", "AU", "RU", "BR", "IN", "FR", "JP", "MX"]
_EXAMPLES = [
    phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
    for r in _REGIONS
    for t in _TYPES
    if (n := phonenumbers.example_number_for_type(r, t)) is not None
]


@st.composite
def _raw_numbers(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        example = draw(st.sampled_from(_EXAMPLES))
        keep = draw(st.integers(min_value=3, max_value=len(example) - 1))
        tail = draw(st.text(alphabet="0123456789", min_size=0, max_size=len(example) - keep + 1))
        raw = example[:keep] + tail
        if draw(st.booleans()):
            raw = raw.removeprefix("+")  # national digits, or a country code without "+"
    else:
        raw = draw(st.sampled_from(["", "+"])) + draw(
            st.text(alphabet="0123456789", min_size=4, max_size=14)
        )
    # Written with separators, as people do (the import's shortcut reads these itself).
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        at = draw(st.integers(min_value=1, max_value=len(raw)))
        raw = raw[:at] + draw(st.sampled_from([" ", "-", ".", "(", ")", " ext "])) + raw[at:]
    return raw


@settings(max_examples=1_000, deadline=None)
@given(raw=_raw_numbers(), region=st.sampled_from(_REGIONS))
def test_normalise_number_agrees_with_phonenumbers(raw: str, region: str) -> None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        with pytest.raises(ValueError, match="not a phone number"):
            normalise_number(raw, region)
        return
    if not phonenumbers.is_valid_number(number):
        with pytest.raises(ValueError, match="not a valid number"):
            normalise_number(raw, region)
        return
    e164, zones = normalise_number(raw, region)
    assert e164 == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    expected = pn_timezone.time_zones_for_number(number)
    assert zones == (None if expected == (pn_timezone.UNKNOWN_TIMEZONE,) else tuple(expected))


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("Phone Number;Time Zone;Customer Name\n+1 202 555 0101;America/New_York;Ann\n", ";"),
        ("PHONE-NUMBER\tTZ\tCustomer Name\n+1 202 555 0101\tAmerica/New_York\tAnn\n", "\t"),
        (" phone number |Timezone|Customer Name\n+1 202 555 0101|America/New_York|Ann\n", "|"),
        (
            '"Phone Number","Time_Zone","Customer Name"\n'
            '"+1 202 555 0101","America/New_York",Ann\n',
            ",",
        ),
    ],
)
async def test_headers_match_whatever_their_case_and_spacing_and_the_delimiter_is_sniffed(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path, text: str, delimiter: str
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8")
    async with db_pool.acquire() as conn:
        summary = await import_leads(conn, path, campaign="spring", region="US")
    assert (summary.imported, summary.rejected) == (1, 0), summary
    row = await db_pool.fetchrow("SELECT phone_e164, timezone, fields FROM leads")
    assert tuple(row) == ("+12025550101", "America/New_York", {"Customer Name": "Ann"})


async def test_a_semicolon_file_keeps_commas_inside_its_fields(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path
) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("telefon;phone;amount\nx;+44 20 7946 0958;35,50\n", encoding="utf-8")
    async with db_pool.acquire() as conn:
        summary = await import_leads(conn, path, campaign="spring", region="GB")
    assert summary.imported == 1
    assert await db_pool.fetchval("SELECT fields FROM leads") == {"telefon": "x", "amount": "35,50"}


async def test_a_short_row_is_read_when_it_has_its_phone(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path
) -> None:
    path = tmp_path / "short.csv"
    path.write_text(
        "phone,name,plan,consent,priority,amount\n+1 202 555 0101,Ann\n,Bob\n", encoding="utf-8"
    )
    async with db_pool.acquire() as conn:
        summary = await import_leads(conn, path, campaign="spring", region="US")
    assert (summary.imported, summary.rejected) == (1, 1)
    row = await db_pool.fetchrow("SELECT consent, priority, fields FROM leads")
    assert tuple(row) == (False, 0, {"name": "Ann", "plan": "", "amount": ""})
    _, bob = _read_rejects(rejects_path(path))
    assert bob[:2] == ["3", "missing_phone: the phone column is empty"]
    path.write_text("name,phone\nCy\n", encoding="utf-8")
    async with db_pool.acquire() as conn:
        summary = await import_leads(conn, path, campaign="spring", region="US")
    assert summary.reject_reasons == {"missing_phone": 1}
    _, cy = _read_rejects(rejects_path(path))
    assert cy[:2] == ["2", "missing_phone: the row has 1 of 2 columns and no phone"]


async def test_a_consent_campaign_warns_about_a_file_without_consent(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await db_pool.execute(
        """INSERT INTO campaigns (name, script_name, settings)
           VALUES ('strict', 's', '{"require_consent": true}'), ('lax', 's', '{}')"""
    )
    path = tmp_path / "no-consent.csv"
    path.write_text("phone\n+1 202 555 0101\n", encoding="utf-8")
    async with db_pool.acquire() as conn:
        strict = await import_leads(conn, path, campaign="strict", region="US")
        lax = await import_leads(conn, path, campaign="lax", region="US")
    assert strict.warnings == [
        "campaign 'strict' dials only leads with consent, and the file has no consent column: "
        "its leads are stored without consent and will not be dialled"
    ]
    assert lax.warnings == []
    path.write_text("phone,Consent\n+1 202 555 0102,yes\n", encoding="utf-8")
    async with db_pool.acquire() as conn:
        with_column = await import_leads(conn, path, campaign="strict", region="US")
    assert with_column.warnings == []
