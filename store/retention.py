"""Retention: what is past its time, counted (`--dry-run`) or purged in small batches.

Each rule is one table, a condition on the row's age (`$1` is the rule's age in days), and what
happens to a matching row: deleted, or anonymised when statistics still count it. A batch is
one short statement over at most `batch_rows` rows it locks with SKIP LOCKED, so a call
writing its turns never waits for the purge, and the purge never waits for a call.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from store.recordings import queue_recordings
from store.settings import RetentionSettings
from store.turns import DELETE_TURNS_OF_GONE_CALLS, TURN_CONTENT_SCRUB

_AGE = "now() - make_interval(days => $1)"


@dataclass(frozen=True)
class Rule:
    kind: str  # a RetentionSettings field and the metric's label
    table: str
    where: str
    # SQL applied to the batch's rows: "DELETE" or "SET ..." (an anonymising UPDATE).
    action: str
    # Statements run on the batch's rows as they were (`gone` holds them); an UPDATE rule has
    # its rows' old values in `gone` only with `keeps_old`.
    cascade: tuple[str, ...] = ()
    keeps_old: bool = False

    def count_sql(self) -> str:
        return f"SELECT count(*) FROM {self.table} WHERE {self.where}"

    def batch_sql(self) -> str:
        batch = (
            f"ctid = ANY(ARRAY(SELECT ctid FROM {self.table} WHERE {self.where} "
            "LIMIT $2 FOR UPDATE SKIP LOCKED))"
        )
        if self.action == "DELETE":
            changed = f"DELETE FROM {self.table} WHERE {batch} RETURNING *"
        elif self.keeps_old:
            # The row as it was, joined by ctid: RETURNING alone gives the new values.
            changed = (
                f"UPDATE {self.table} {self.action} FROM (SELECT ctid AS was_ctid, * "
                f"FROM {self.table} WHERE {self.where} LIMIT $2 FOR UPDATE SKIP LOCKED) AS was "
                f"WHERE {self.table}.ctid = was.was_ctid RETURNING was.*"
            )
        else:
            changed = f"UPDATE {self.table} {self.action} WHERE {batch} RETURNING 1"
        extra = "".join(f", cascaded_{i} AS ({sql})" for i, sql in enumerate(self.cascade))
        return f"WITH gone AS ({changed}){extra} SELECT count(*) FROM gone"


_TURN_HAS_CONTENT = """(text <> '' OR dtmf IS NOT NULL OR entities <> '{}'::jsonb
    OR emotion <> '{}'::jsonb OR agitation IS NOT NULL)"""

RULES: tuple[Rule, ...] = (
    Rule(
        "turn_text_days",
        "turns",
        f"created_at < {_AGE} AND {_TURN_HAS_CONTENT}",
        f"SET {TURN_CONTENT_SCRUB}",
    ),
    Rule(
        "recordings_days",
        "calls",
        f"recording_path IS NOT NULL AND started_at < {_AGE}",
        "SET recording_path = NULL",
        cascade=(queue_recordings("retention"),),
        keeps_old=True,
    ),
    # A call's turns go with it (turns have no foreign key: the spool writes them first), and
    # its recording, if it still has one, is queued for deletion.
    Rule(
        "calls_days",
        "calls",
        f"started_at < {_AGE}",
        "DELETE",
        cascade=(
            DELETE_TURNS_OF_GONE_CALLS,
            queue_recordings("call_deleted"),
        ),
    ),
    Rule("calls_days", "call_attempts", f"started_at < {_AGE}", "DELETE"),
    Rule("compliance_events_days", "compliance_events", f"created_at < {_AGE}", "DELETE"),
    Rule("audit_days", "api_audit", f"at < {_AGE}", "DELETE"),
    Rule(
        "outbox_delivered_days",
        "outbox",
        f"delivered_at IS NOT NULL AND delivered_at < {_AGE}",
        "DELETE",
    ),
    Rule(
        "outbox_unsent_days",
        "outbox",
        f"delivered_at IS NULL AND created_at < {_AGE}",
        "DELETE",
    ),
    # A finished lead untouched this long is anonymised as an erasure would (its DNC entry,
    # if any, stays as it is: the dnc_days rule decides that).
    Rule(
        "finished_leads_days",
        "leads",
        f"status IN ('done', 'blocked', 'failed') AND erased_at IS NULL AND updated_at < {_AGE}",
        """SET phone_e164 = NULL, external_id = NULL, fields = '{}'::jsonb, timezone = 'UTC',
               consent = false, status = 'blocked', block_reason = 'expired',
               erased_at = now()""",
    ),
    Rule("dnc_days", "dnc", f"created_at < {_AGE}", "DELETE"),
    # What a call captured (a promised date, an amount) goes with the turns' entities.
    Rule(
        "turn_text_days",
        "calls",
        f"ended_at < {_AGE} AND captured <> '{{}}'::jsonb",
        "SET captured = '{}'::jsonb",
    ),
    Rule("calls_days", "engagement_events", f"occurred_at < {_AGE}", "DELETE"),
    Rule("calls_days", "follow_ups", f"created_at < {_AGE}", "DELETE"),
)


@dataclass(frozen=True)
class RuleResult:
    kind: str
    table: str
    rows: int


def active_rules(settings: RetentionSettings, *, webhooks: bool) -> list[tuple[Rule, int]]:
    """The rules with a configured age, and their age in days. Unsent outbox events expire only
    when no webhook is configured: with one, the sender retries them for as long as it takes."""
    chosen = []
    for rule in RULES:
        days = getattr(settings, rule.kind)
        if days is None or (rule.kind == "outbox_unsent_days" and webhooks):
            continue
        chosen.append((rule, days))
    return chosen


async def count_expired(conn: asyncpg.Connection | asyncpg.Pool, rule: Rule, days: int) -> int:
    return int(await conn.fetchval(rule.count_sql(), days))


async def purge_batch(
    conn: asyncpg.Connection | asyncpg.Pool, rule: Rule, days: int, batch_rows: int
) -> int:
    """Purge at most `batch_rows` expired rows in one statement; returns how many."""
    return int(await conn.fetchval(rule.batch_sql(), days, batch_rows))


# Turns of an erased lead's calls that arrived after the erasure (replayed from the spool of a
# daemon that lost the database for a while) are scrubbed by every purge pass (age 0 days).
LATE_TURNS = Rule(
    "erased",
    "turns",
    f"""{_TURN_HAS_CONTENT} AND call_id IN (
        SELECT a.call_id FROM call_attempts a JOIN leads l ON l.id = a.lead_id
        WHERE l.erased_at < now() - make_interval(days => $1))""",
    f"SET {TURN_CONTENT_SCRUB}",
)


# A lead anonymised by `finished_leads_days` keeps no channel consents, engagement, follow-ups
# or churn label and score: every purge pass deletes them (age 0 days), as an erasure would.
ERASED_LEFTOVERS = tuple(
    Rule(
        "erased",
        table,
        "lead_id IN (SELECT id FROM leads WHERE erased_at < now() - make_interval(days => $1))",
        "DELETE",
    )
    for table in (
        "channel_consents", "engagement_events", "follow_ups", "churn_labels", "churn_scores",
    )
)  # fmt: skip
