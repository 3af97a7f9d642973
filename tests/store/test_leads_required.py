"""A lead the campaign's script cannot be run with is refused at import: its row goes to the
rejects file as `missing_field: NAME ...` (checked per row, after the import's own checks)."""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from outdial.cli import app
from store.campaigns import ensure_campaign
from store.leads import import_leads
from store.scripts import campaign_required_fields, record_script_version

REPO = Path(__file__).resolve().parents[2]
ORDER_SCRIPT = "order_confirmation_en"
ORDER_REQUIRED = ("customer_name", "order_number", "item", "address")
HEADER = "phone,customer_name,order_number,item,address,store\n"
ROWS = [
    "+12015550123,Ann,A-1,a lamp,1 Oak St,\n",  # complete: `store` has a default
    "+12015550124,Bob,A-2,a desk,,\n",  # blank address
    "+12015550125,,A-3,a rug,3 Elm St,\n",  # blank name
    "+12015550126,Cy,A-4,  ,4 Ash St,Acme\n",  # whitespace is no item either
]


def _missing(field: str) -> str:
    return f"missing_field: {field} is absent or blank, and the campaign's script needs it"


def _rejects(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


async def test_rows_lacking_a_required_field_go_to_the_rejects_file(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "".join(ROWS), encoding="utf-8")
    async with db_pool.acquire() as conn:
        await ensure_campaign(conn, "orders", ORDER_SCRIPT)
        summary = await import_leads(
            conn, path, campaign="orders", region="US", required_fields=ORDER_REQUIRED
        )
    assert (summary.rows, summary.imported, summary.rejected) == (4, 1, 3)
    assert summary.reject_reasons == {"missing_field": 3}
    rejects = _rejects(tmp_path / "orders.rejects.csv")
    assert rejects[0][:2] == ["line", "reason"]
    assert [(r[0], r[1]) for r in rejects[1:]] == [
        ("3", _missing("address")),
        ("4", _missing("customer_name")),
        ("5", _missing("item")),
    ]
    assert rejects[1][2:] == ROWS[1].rstrip("\n").split(",")  # the row as it was
    stored = await db_pool.fetch("SELECT phone_e164, fields FROM leads")
    assert [(r["phone_e164"], r["fields"]["customer_name"]) for r in stored] == [
        ("+12015550123", "Ann")
    ]


async def test_a_file_without_the_column_rejects_every_row(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "no_item.csv"
    path.write_text("phone,customer_name\n+12015550123,Ann\n", encoding="utf-8")
    async with db_pool.acquire() as conn:
        await ensure_campaign(conn, "orders", ORDER_SCRIPT)
        summary = await import_leads(
            conn, path, campaign="orders", region="US", required_fields=("customer_name", "item")
        )
    assert (summary.imported, summary.rejected) == (0, 1)
    assert _rejects(tmp_path / "no_item.rejects.csv")[1][1] == _missing("item")


async def test_the_current_script_version_says_what_is_required(db_pool: asyncpg.Pool) -> None:
    """The daemon records each loaded version's required fields; the live version is the
    campaign's current script: new content, or older content the file was edited back to,
    but not known content loaded again at a restart (a promoted version stays live)."""
    async with db_pool.acquire() as conn:
        await ensure_campaign(conn, "orders", ORDER_SCRIPT)
        assert await campaign_required_fields(conn, "orders") is None  # never loaded
        await record_script_version(db_pool, ORDER_SCRIPT, "v1", "h1", None, ["customer_name"])
        assert await campaign_required_fields(conn, "orders") == ("customer_name",)
        await record_script_version(db_pool, ORDER_SCRIPT, "v2", "h2", None, ["item", "address"])
        assert await campaign_required_fields(conn, "orders") == ("item", "address")
        await record_script_version(db_pool, ORDER_SCRIPT, "v1", "h1", None, ["customer_name"])
        assert await campaign_required_fields(conn, "orders") == ("item", "address")
        await record_script_version(
            db_pool, ORDER_SCRIPT, "v1", "h1", None, ["customer_name"], edited=True
        )
        assert await campaign_required_fields(conn, "orders") == ("customer_name",)
        assert await campaign_required_fields(conn, "no-such-campaign") is None


@pytest.mark.parametrize("source", ["daemon", "scripts_dir"])
def test_the_cli_checks_the_campaigns_script(
    pg_url: str, db_pool: asyncpg.Pool, tmp_path: Path, source: str
) -> None:
    """`outdial leads import` finds what the script requires where the daemon put it (the
    version it serves wins over the file, which may have been edited since), or in the
    configured scripts_dir when no daemon has loaded it yet."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(REPO / "scripts" / f"{ORDER_SCRIPT}.yaml", scripts)
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nscripts_dir: {scripts}\n")
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "".join(ROWS), encoding="utf-8")
    if source == "daemon":
        _register(pg_url, ("customer_name",))
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "leads", "import", str(path), "--campaign", "orders",
         "--region", "US", "--create-campaign", "--script", ORDER_SCRIPT, "--json"],
        env={"OUTDIAL_DATABASE_URL": pg_url},
    )  # fmt: skip
    assert result.exit_code == 0, result.exception
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    expected = (3, {"missing_field": 1}) if source == "daemon" else (1, {"missing_field": 3})
    assert (summary["imported"], summary["reject_reasons"]) == expected


def test_the_cli_warns_when_it_cannot_know(pg_url: str, tmp_path: Path) -> None:
    """A campaign whose script is neither served by a daemon nor in scripts_dir (removed
    since the campaign was made): the import goes on, and says the dialer will check."""
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nscripts_dir: {tmp_path}\n")
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "".join(ROWS), encoding="utf-8")
    asyncio.run(_create_campaign(pg_url, "c2", "unknown_script"))
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "leads", "import", str(path), "--campaign", "c2",
         "--region", "US", "--json"],
        env={"OUTDIAL_DATABASE_URL": pg_url},
    )  # fmt: skip
    assert result.exit_code == 0, result.exception
    assert "required fields are not checked now" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["imported"] == 4


async def _create_campaign(pg_url: str, name: str, script: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await ensure_campaign(conn, name, script)
    finally:
        await conn.close()


def _register(pg_url: str, required: tuple[str, ...]) -> None:
    async def register() -> None:
        pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=1)
        try:
            await record_script_version(pool, ORDER_SCRIPT, "src", "hash", None, list(required))
        finally:
            await pool.close()

    asyncio.run(register())
