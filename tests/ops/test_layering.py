"""The SQL check `make lint` runs (tools/check_sql.py): it finds SQL outside store/."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check_sql() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_sql", ROOT / "tools" / "check_sql.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sql_text_and_query_calls_outside_store_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "leads.py").write_text(
        'QUERY = """\n    SELECT id\n    FROM leads\n"""\n\n\n'
        "async def count(pool):\n"
        '    return await pool.fetchval(f"SELECT count(*) FROM {QUERY}")\n'
    )
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "leads.py").write_text('Q = "DELETE FROM leads"\n')
    (tmp_path / "agi").mkdir()
    (tmp_path / "agi" / "eagi.py").write_text(
        'def status(agi):\n    return agi.execute("CHANNEL STATUS")\n\n\n'
        'async def alive(pool):\n    return await pool.fetchval("select 1")\n'
    )
    (tmp_path / "dialog").mkdir()
    (tmp_path / "dialog" / "prompts.py").write_text('SAY = "Please select one from the menu"\n')
    assert _check_sql().main(tmp_path) == 1
    assert sorted(capsys.readouterr().out.splitlines()) == [
        "agi/eagi.py:6: .fetchval() query outside store/",
        "api/leads.py:1: SQL text outside store/",
        "api/leads.py:8: .fetchval() query outside store/",
        "api/leads.py:8: SQL text outside store/",
    ]
