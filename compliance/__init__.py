"""Compliance: sensitive words, PII redaction, and the gates (DNC, consent, attempt caps,
calling windows) every dial passes.

Pure: no sockets, no database, no environment. Public API:

- `WordFilter.from_files(paths)`, `default_word_filter()`, `WordFilter.check(text, direction)
  -> FilterResult(text, hits, blocked, escalate)`: bot text with `blocked` must never be spoken.
- `redact(text, regions) -> RedactionResult(text, hits)`: phones, bank cards, CN IDs, e-mails.
- `is_within_calling_window(now_utc, tz, window, days, holidays)`, `CallingWindow.parse`,
  `parse_days`.
- `evaluate(LeadFacts, rules, now_utc) -> Verdict` (`compliance.gates`): the first gate a lead
  fails, with the rule functions it applies (`dnc_verdict`, `consent_verdict`, ...).
"""

from compliance.redact import PiiHit, RedactionResult, redact
from compliance.rules import CallingWindow, is_within_calling_window, parse_days
from compliance.words import FilterResult, WordFilter, WordHit, default_word_filter

__all__ = [
    "CallingWindow",
    "FilterResult",
    "PiiHit",
    "RedactionResult",
    "WordFilter",
    "WordHit",
    "default_word_filter",
    "is_within_calling_window",
    "parse_days",
    "redact",
]
