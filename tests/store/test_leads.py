"""Lead import against a real PostgreSQL: every row imported, a counted duplicate or rejected."""

from __future__ import annotations

import asyncio
import csv
import shutil
from pathlib import Path

import asyncpg
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as pn_timezone

from store.leadrows import normalise_number
from store.leads import (
    CampaignNotFoundError,
    ImportSummary,
    LeadImportError,
    ensure_campaign,
    import_leads,
    rejects_path,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "leads"

# line -> reject category, for tests/fixtures/leads/mixed.csv (see make_mixed_csv.py).
MIXED_REJECTS = {
    5: "bad_number",
    6: "bad_number",
    7: "missing_phone",
    8: "column_count",
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
    "+13125550199": ("E12", "America/Chicago", 0, False, {"name": "Lee", "plan": ""}),
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
async def test_every_row_of_a_messy_file_is_accounted_for(
    db_pool: asyncpg.Pool, campaign: int, mixed_csv: Path, workers: int
) -> None:
    await db_pool.execute(
        "INSERT INTO leads (campaign_id, phone_e164, timezone) VALUES ($1, $2, $3)",
        campaign, "+12025550147", "America/New_York",
    )  # fmt: skip
    async with db_pool.acquire() as conn:
        summary = await import_leads(
            conn, mixed_csv, campaign="spring", region="US", workers=workers, chunk_rows=3
        )
    assert summary.rows == 19  # 21 lines after the header: one blank, one record spans two
    assert (summary.imported, summary.duplicates_in_file, summary.duplicates_in_db) == (6, 1, 1)
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
    assert [int(r[0]) for r in rejected] == sorted(MIXED_REJECTS)
    assert summary.reject_reasons == {
        c: list(MIXED_REJECTS.values()).count(c) for c in set(MIXED_REJECTS.values())
    }
    by_line = {int(r[0]): r for r in rejected}
    assert by_line[16][2:4] == ["E1", "Oli"]  # the row as it was, after line and reason
    assert "line 2" in by_line[16][1]
    assert "Mars/Olympus" in by_line[12][1]
    assert "expected 7 columns, found 3" in by_line[8][1]
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


async def test_a_monstrous_field_stops_the_import_with_its_line(
    db_pool: asyncpg.Pool, campaign: int, tmp_path: Path
) -> None:
    path = tmp_path / "huge.csv"
    path.write_bytes(b"phone,note\n+12015550123,ok\n+14155552671," + b"x" * 200_000 + b"\n")
    async with db_pool.acquire() as conn:
        with pytest.raises(LeadImportError, match="huge.csv:3: field larger than field limit"):
            await import_leads(conn, path, campaign="spring", region="US")


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
        return example[:keep] + tail
    return draw(st.sampled_from(["", "+"])) + draw(
        st.text(alphabet="0123456789", min_size=4, max_size=14)
    )


@settings(max_examples=400, deadline=None)
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
