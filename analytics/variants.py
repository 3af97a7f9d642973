"""Script variants in the database: registration, outcomes, admin retire and restore."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from store.scripts import (
    VariantRow,
    lock_script_variants,
    set_variant_active,
    set_variant_retired,
)

ACTIVE = "active"
RETIRED = "retired"


class VariantError(ValueError):
    """A variant operation that cannot be done (unknown name, last active variant, ...)."""


def clean_variant_names(variants: Sequence[str]) -> list[str]:
    """The declared names, de-duplicated in order; an empty or blank name is an error."""
    names: list[str] = []
    for name in variants:
        if not isinstance(name, str) or not name.strip():
            raise VariantError(f"variant names must be non-empty strings, got {name!r}")
        if name not in names:
            names.append(name)
    if not names:
        raise VariantError("a script needs at least one variant to choose from")
    return names


async def _lock_script_variants(
    conn: asyncpg.Connection, script_name: str
) -> dict[str, VariantRow]:
    """Lock the script's variant rows so a retirement cannot race another one."""
    rows = await lock_script_variants(conn, script_name)
    if not rows:
        raise VariantError(f"no script named {script_name!r} has variants")
    return {r.name: r for r in rows}


async def retire_locked(
    conn: asyncpg.Connection,
    script_name: str,
    variant: str,
    evidence: dict[str, Any],
    at: datetime,
) -> None:
    """Retire one variant; the caller holds a transaction. Refuses the last active variant."""
    rows = await _lock_script_variants(conn, script_name)
    row = rows.get(variant)
    if row is None:
        raise VariantError(f"script {script_name!r} has no variant {variant!r}")
    if row.status == RETIRED:
        raise VariantError(f"variant {variant!r} of {script_name!r} is already retired")
    if sum(1 for r in rows.values() if r.status == ACTIVE) <= 1:
        raise VariantError(
            f"variant {variant!r} is the last active variant of {script_name!r}; "
            "it cannot be retired"
        )
    if row.evidence:
        # Keep the earlier retire/restore record: the admin may want to see the whole story.
        evidence = {**evidence, "previous": row.evidence}
    await set_variant_retired(conn, row.id, at, evidence)


async def retire_variant(
    pool: asyncpg.Pool, script_name: str, variant: str, *, actor: str, reason: str
) -> None:
    """An admin retires a variant by hand."""
    now = datetime.now(UTC)
    evidence = {"retired_by": "admin", "actor": actor, "reason": reason, "retired_at": _iso(now)}
    async with pool.acquire() as conn, conn.transaction():
        await retire_locked(conn, script_name, variant, evidence, now)


async def restore_variant(
    pool: asyncpg.Pool, script_name: str, variant: str, *, actor: str
) -> None:
    """Undo a retirement. Calls before the restoration no longer count against the variant."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        rows = await _lock_script_variants(conn, script_name)
        row = rows.get(variant)
        if row is None:
            raise VariantError(f"script {script_name!r} has no variant {variant!r}")
        if row.status == ACTIVE:
            raise VariantError(f"variant {variant!r} of {script_name!r} is not retired")
        evidence = {**(row.evidence or {}), "restored_at": _iso(now), "restored_by": actor}
        await set_variant_active(conn, row.id, evidence)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def evidence_summary(evidence: dict[str, Any] | None) -> str:
    """One line for tables: who retired it and on what grounds."""
    if not evidence:
        return ""
    # A later retirement writes fresh evidence (the restore moves under "previous").
    if "restored_at" in evidence:
        return f"restored {evidence['restored_at'][:19]} by {evidence.get('restored_by', '?')}"
    if evidence.get("retired_by") == "admin":
        return f"admin {evidence.get('actor', '?')}: {evidence.get('reason', '')}"
    if "p_value" in evidence:
        mine, best = evidence["variant"], evidence["best"]
        return (
            f"{mine['successes']}/{mine['completed']} vs {best['variant']} "
            f"{best['successes']}/{best['completed']}, p={evidence['p_value']:.3g}"
        )
    return json.dumps(evidence, sort_keys=True)[:80]
