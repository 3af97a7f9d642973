"""Compliance: sensitive words, PII redaction, calling window, DNC and consent rules.

Pure: no sockets, no database, no environment. Public API:

- `WordFilter.from_files(paths)`, `default_word_filter()`, `WordFilter.check(text, direction)
  -> FilterResult(text, hits, blocked, escalate)`: bot text with `blocked` must never be spoken.
- `redact(text, regions) -> RedactionResult(text, hits)`: phones, bank cards, CN IDs, e-mails.
- `is_within_calling_window(now_utc, tz, window, days, holidays)`, `is_on_dnc(phone, global,
  campaign)`, `may_call(has_consent, region, consent_required_regions)`.
"""

from compliance.redact import PiiHit, RedactionResult, redact
from compliance.rules import (
    CallingWindow,
    is_on_dnc,
    is_within_calling_window,
    may_call,
    parse_days,
)
from compliance.words import FilterResult, WordFilter, WordHit, default_word_filter

__all__ = [
    "CallingWindow",
    "FilterResult",
    "PiiHit",
    "RedactionResult",
    "WordFilter",
    "WordHit",
    "default_word_filter",
    "is_on_dnc",
    "is_within_calling_window",
    "may_call",
    "parse_days",
    "redact",
]
