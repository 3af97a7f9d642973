"""`make lint`: no SQL outside store/ (issue 15, NOTES.md §1: store/ holds all SQL).

Flags, in the product's packages other than store/: string literals that read as SQL
statements, and asyncpg query calls (`.fetch(...)`, `.execute(...)`, ...). Migrations and tests
are outside the product's packages and may hold SQL. Exit 1 with FILE:LINE per finding.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

PACKAGES = (
    "outdial", "api", "crm", "langpacks", "agi", "dialer", "analytics",
    "dialog", "nlu", "emotion", "compliance", "voice", "pbxsim",
)  # fmt: skip
SQL_TEXT = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|TRUNCATE\s|"
    r"CREATE\s+(TABLE|INDEX|TYPE)|ALTER\s+TABLE|COPY\s+\w+)\b",
    re.DOTALL,
)
SQL_START = re.compile(
    r"\s*(SELECT|WITH|INSERT|UPDATE|DELETE|COPY|LOCK|SET|SHOW|NOTIFY|LISTEN|VACUUM|ANALYZE)\b",
    re.IGNORECASE,
)
QUERY_METHODS = frozenset(
    {"fetch", "fetchrow", "fetchval", "execute", "executemany",
     "copy_records_to_table", "copy_to_table", "copy_from_query"}
)  # fmt: skip


def findings(path: Path, where: str) -> list[str]:
    """SQL in one file; `where` is how the report names it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL_TEXT.search(node.value):
                found.append(f"{where}:{node.lineno}: SQL text outside store/")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in QUERY_METHODS
            and node.args
            and _is_text(node.args[0])
        ):
            found.append(f"{where}:{node.lineno}: .{node.func.attr}() query outside store/")
    return found


def _is_text(arg: ast.expr) -> bool:
    """A query passed as SQL text, an f-string or a name bound to one (pyst2's AGI
    `execute("CHANNEL STATUS")` is not SQL)."""
    if isinstance(arg, ast.Constant):
        return isinstance(arg.value, str) and bool(SQL_START.match(arg.value))
    return isinstance(arg, ast.JoinedStr | ast.Name | ast.BinOp)


def main(root: Path) -> int:
    problems = [
        line
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        for line in findings(path, str(path.relative_to(root)))
    ]
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parent.parent))
