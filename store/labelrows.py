"""Churn labels from a CSV file (`outdial models labels churn FILE`): one row per lead.

Columns: `lead_id` (outdial's id) or `external_id` (the CRM's, with --campaign), `churned`
(true/false, yes/no, 1/0) and optionally `observed_at` (ISO date or date-time; default: the
import's time). A file with any bad row is refused whole, every bad row named by its line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_TRUE = {"true", "yes", "1", "y", "t", "churned"}
_FALSE = {"false", "no", "0", "n", "f", "retained"}


class LabelFileError(ValueError):
    """The file cannot be read, or rows are wrong; the message lists each with its line."""


@dataclass(frozen=True)
class LabelRow:
    line: int
    key: str  # a lead id or an external id, as the file's key column says
    churned: bool
    observed_at: datetime


def _churned(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"churned: {text!r} is not true/false, yes/no or 1/0")


def _moment(text: str, default: datetime) -> datetime:
    if not text.strip():
        return default
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"observed_at: {text!r} is not an ISO date or date-time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_label_file(path: Path, *, now: datetime | None = None) -> tuple[str, list[LabelRow]]:
    """(key column, rows): the key column is `lead_id` or `external_id`."""
    default = now or datetime.now(UTC)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            key = next((k for k in ("lead_id", "external_id") if k in header), None)
            if key is None or "churned" not in header:
                raise LabelFileError(
                    f"{path}:1: the header needs a lead_id or external_id column and a "
                    f"churned column (found: {', '.join(header) or 'nothing'})"
                )
            rows, errors = [], []
            for record in reader:
                line = reader.line_num
                values = {(k or "").strip(): (v or "") for k, v in record.items()}
                try:
                    ident = values[key].strip()
                    if not ident or (key == "lead_id" and not ident.isdigit()):
                        raise ValueError(f"{key}: {ident!r} is not a lead's id")
                    row = LabelRow(line, ident, _churned(values["churned"]),
                                   _moment(values.get("observed_at", ""), default))  # fmt: skip
                except ValueError as exc:
                    errors.append(f"{path}:{line}: {exc}")
                    continue
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelFileError(f"{path}: cannot read: {exc}") from exc
    if errors:
        raise LabelFileError("\n".join(errors))
    return key, rows
