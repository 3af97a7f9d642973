"""Logging to stderr (journald under systemd), plain or JSON lines, with numbers masked.

Every record passes a filter that masks phone numbers (keeping the last four digits), known
secret values, and credentials wherever they appear (API tokens, Authorization values,
passwords in URLs, token-like query and header values: `outdial.masking`), in the message,
its arguments and any traceback, before any handler formats it. The filter sits on the one
handler, so records of every library logger (aiohttp's access and server loggers too) pass it.
Masking is deliberately greedy: a 10-digit epoch in a log line loses its first digits too,
which is the right side to err on for call-centre data.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from outdial.config import LogSettings, log_level
from outdial.masking import MASK, mask_secrets

# A digit run (optionally with a leading +, and spaces, hyphens or parentheses between
# groups) holding 7 or more digits, not glued to letters (hex ids stay readable). IP
# addresses and ports never hold 7 digits in a row, so they stay readable too. Timestamps
# (YYYY-MM-DD[ hh:mm[:ss[.fff]]]) are matched first, as a whole, and kept.
_PHONE = re.compile(
    r"(?P<date>(?<!\w)\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?(?!\w))"
    r"|(?<!\w)(?P<plus>\+?)(?P<number>\(?\d(?:[ \-()]{0,2}\d){6,})(?!\w)"
)
# Libraries whose DEBUG lines echo the data they are given (piper logs every text it speaks:
# a customer's name): kept at INFO whatever log.level says.
_ECHOING_LOGGERS = ("piper",)
# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def mask_phone_numbers(text: str) -> str:
    def _mask(match: re.Match[str]) -> str:
        if match["date"]:
            return match["date"]
        digits = re.sub(r"\D", "", match["number"])
        return f"{match['plus']}{'*' * (len(digits) - 4)}{digits[-4:]}"

    return _PHONE.sub(_mask, text)


class RedactingFilter(logging.Filter):
    """Masks phone numbers and secrets in every record (attach to handlers)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return mask_phone_numbers(mask_secrets(text))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class PoolRetryFilter(logging.Filter):
    """asyncpg's pool logs a WARNING with a traceback on every retry of its connection floor
    while PostgreSQL is down (dozens an outage); the health monitor says once that the
    database is lost and once that it is back, so these go down to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.getMessage().startswith(
            "Failed to restore the pool connection floor"
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.exc_info, record.exc_text = None, None
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def plain_formatter(environ: dict[str, str] | None = None) -> logging.Formatter:
    env = os.environ if environ is None else environ
    # journald stamps each line itself; a second timestamp only adds noise there.
    if env.get("JOURNAL_STREAM"):
        return logging.Formatter("%(levelname)s %(name)s: %(message)s")
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def setup_logging(
    settings: LogSettings,
    *,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Route all logging to one stderr handler; replaces handlers set up before."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.json_format else plain_formatter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(log_level(settings.level))  # validated when the config loaded
    for name in _ECHOING_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    pool_logger = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, PoolRetryFilter) for f in pool_logger.filters):
        pool_logger.addFilter(PoolRetryFilter())
    logging.captureWarnings(True)
    return handler


def config_secrets(config: Any) -> list[str]:
    """Every SecretStr value in the config (AMI secrets, database URL, webhook secret)."""
    from pydantic import BaseModel, SecretStr

    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(config)
    return [s for s in found if s]
