"""Each table has one writer module in store/ (issue 15): INSERT, UPDATE, DELETE and COPY of a
table appear in one module only; orchestrators (erasure, retention, simulation, rehearsals)
call the owner's functions."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

STORE = Path(__file__).resolve().parents[2] / "store"

# Single statements that write a second table beside their main one (a CTE), kept in the
# main table's module: (table, module).
ONE_STATEMENT_EXCEPTIONS = {
    # The API's audited lead upsert writes its api_audit rows in the same statement.
    ("api_audit", "leads.py"),
}
# Modules that write a table named at run time: the COPY + INSERT helper (its owner names
# the table) and the retention rule engine (rules declare table, age and action).
GENERIC_WRITERS = {"copyinsert.py", "retention.py"}

# `{}` stands for an f-string's placeholder: a table named at run time.
_WRITE = re.compile(
    r"(?<!DO\s)(?<!FOR\s)(?<!KEY\s)\b(?:INSERT\s+INTO|DELETE\s+FROM|UPDATE|COPY)\s+(\w+|\{\})",
    re.IGNORECASE,
)
_COPY_CALLS = {"copy_records_to_table", "copy_to_table"}


def tables() -> set[str]:
    sql = " ".join(p.read_text() for p in (STORE / "migrations").glob("*.sql"))
    return {
        m.lower() for m in re.findall(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", sql, re.I)
    }


def _text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def written(source: str, known: set[str]) -> set[str]:
    """The tables a module's SQL text writes ("{}" for one named at run time)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr | ast.Constant):
            for name in _WRITE.findall(_text(node) or ""):
                if name == "{}" or name.lower() in known:
                    found.add(name.lower())
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _COPY_CALLS
            and node.args
            and (name := _text(node.args[0])) is not None
        ):
            found.add(name.lower() if name.lower() in known else "{}")
    return found


def problems(sources: dict[str, str], known: set[str]) -> list[str]:
    writers: dict[str, set[str]] = defaultdict(set)
    found = []
    for module, source in sources.items():
        for table in written(source, known):
            if table == "{}":
                if module not in GENERIC_WRITERS:
                    found.append(f"{module} writes a table named at run time")
            elif (table, module) not in ONE_STATEMENT_EXCEPTIONS:
                writers[table].add(module)
    found += [
        f"{table} is written from {', '.join(sorted(mods))}"
        for table, mods in sorted(writers.items())
        if len(mods) > 1
    ]
    return found


def test_each_table_has_one_writer_module() -> None:
    sources = {p.name: p.read_text() for p in sorted(STORE.glob("*.py"))}
    assert problems(sources, tables()) == []


def test_a_second_writer_is_found() -> None:
    known = {"leads", "turns", "dnc"}
    sources = {
        "leads.py": 'Q = "UPDATE leads SET x = 1 WHERE id = $1 FOR UPDATE"',
        "turns.py": 'Q = """DELETE FROM turns WHERE call_id = $1"""',
        "erasure.py": 'async def f(c, t):\n    await c.execute(f"UPDATE leads SET {t}")',
        "dnc.py": 'async def f(c, r):\n    await c.copy_records_to_table("dnc", records=r)',
        "spool.py": 'async def f(c, t):\n    await c.execute(f"DELETE FROM {t}")',
        "other.py": 'Q = "INSERT INTO dnc (x) VALUES ($1) ON CONFLICT DO UPDATE SET x = 1"',
    }
    assert problems(sources, known) == [
        "spool.py writes a table named at run time",
        "dnc is written from dnc.py, other.py",
        "leads is written from erasure.py, leads.py",
    ]


def test_migrations_name_the_tables() -> None:
    assert {"leads", "calls", "call_attempts", "turns", "api_audit", "outbox"} <= tables()
