"""Prometheus metrics of the store (names fixed by the team contract)."""

from prometheus_client import Counter, Gauge

SPOOL_DEPTH_ROWS = Gauge(
    "outdial_spool_depth_rows",
    "Turn rows waiting in the on-disk spool for PostgreSQL",
)
TURNS_WRITTEN = Counter(
    "outdial_turns_written",
    "Turn rows written to PostgreSQL",
)
ROWS_PURGED = Counter(
    "outdial_privacy_rows_purged",
    "Rows deleted or anonymised by the retention job, by retention rule and table",
    ["rule", "table"],
)
