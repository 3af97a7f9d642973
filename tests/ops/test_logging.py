"""Log setup: plain and JSON lines, phone numbers and secrets masked in every record."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Sequence

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat
from pydantic import ValidationError

from outdial.config import Config, LogSettings, parse_config
from outdial.logging import (
    RedactingFilter,
    config_secrets,
    mask_phone_numbers,
    plain_formatter,
    setup_logging,
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("dialing +14155552671 now", "dialing +*******2671 now"),
        ("customer 13812345678 refused", "customer *******5678 refused"),
        ("+86 138 1234 5678", "+*********5678"),
        ("call (415) 555-2671.", "call ******2671."),
        ("number:4155552671", "number:******2671"),
        ("short 5552671", "short ***2671"),
        # Not phone numbers: kept as they are.
        ("agi://127.0.0.1:4573/outdial?lead=42", "agi://127.0.0.1:4573/outdial?lead=42"),
        ("at 2026-05-12 12:30:45.120 in 1500 ms", "at 2026-05-12 12:30:45.120 in 1500 ms"),
        ("uuid 3f2a9c1e1234567b", "uuid 3f2a9c1e1234567b"),
        ("ext 123456", "ext 123456"),
    ],
)
def test_masking_examples(text: str, masked: str) -> None:
    assert mask_phone_numbers(text) == masked


_REGIONS = ["US", "CN", "GB", "KR", "DE", "FR", "IN", "BR", "JP", "AU"]
_FORMATS = [PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL]


@given(
    region=st.sampled_from(_REGIONS),
    fmt=st.sampled_from(_FORMATS),
    kind=st.sampled_from(
        [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
    ),
)
def test_real_numbers_keep_only_their_last_four_digits(region: str, fmt: int, kind: int) -> None:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    written = phonenumbers.format_number(number, fmt)
    e164_digits = re.sub(r"\D", "", phonenumbers.format_number(number, PhoneNumberFormat.E164))
    out = mask_phone_numbers(f"lead 42 at {written} answered")
    assert re.sub(r"\D", "", out) == "42" + e164_digits[-4:], (written, out)


def _handler_output(
    settings: LogSettings, emit: Callable[[logging.Logger], None], secrets: Sequence[str] = ()
) -> str:
    stream = io.StringIO()
    setup_logging(settings, stream=stream, secrets=secrets)
    emit(logging.getLogger("outdial.test"))
    return stream.getvalue()


def test_plain_lines_mask_messages_args_and_tracebacks(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)

    def emit(log: logging.Logger) -> None:
        log.debug("hidden at INFO %s", "+14155550000")
        log.info("dialing %s for lead %d", "+14155552671", 42)
        try:
            raise ValueError("bad number 13812345678")
        except ValueError:
            log.exception("originate failed for %s", 8613812345678)

    out = _handler_output(LogSettings(level="info"), emit)
    assert "4155550000" not in out and "hidden" not in out
    assert "dialing +*******2671 for lead 42" in out
    assert "originate failed for *********5678" in out
    assert "ValueError: bad number *******5678" in out
    assert not re.search(r"\d{7}", out.replace("2026", ""))
    assert re.match(r"\d{4}-\d{2}-\d{2} [\d:,]+ INFO outdial.test: dialing", out)


def test_json_lines_are_one_object_each_with_extras_masked(restore_logging: None) -> None:
    def emit(log: logging.Logger) -> None:
        extra = {"campaign": "c1", "to": "4155552671"}
        log.warning("transfer for %s", "+8613812345678", extra=extra)
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.error("crashed", exc_info=True)

    out = _handler_output(LogSettings(level="DEBUG", json=True), emit)
    lines = out.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "outdial.test"
    assert first["message"] == "transfer for +*********5678"
    assert first["campaign"] == "c1" and first["to"] == "******2671"
    assert first["time"].endswith("+00:00")
    assert "ZeroDivisionError" in second["exception"]


def test_secrets_never_reach_the_log(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTDIAL_AMI_SECRET", "hunter2-ami")
    config = parse_config(
        "database:\n  url: postgresql://outdial:pg-pass-99@db.local/outdial\n", "test.yaml"
    )
    secrets = config_secrets(config)
    assert "hunter2-ami" in secrets
    assert "postgresql://outdial:pg-pass-99@db.local/outdial" in secrets

    def emit(log: logging.Logger) -> None:
        log.info("AMI login with %s", "hunter2-ami")
        log.info("webhook to https://user:s3cr3t@hooks.example/x")

    out = _handler_output(config.log, emit, secrets=secrets)
    assert "hunter2-ami" not in out and "s3cr3t" not in out
    assert "AMI login with ********" in out
    assert "https://user:********@hooks.example/x" in out


TOKEN = "odt_lE7mzM4mXaeUSuG5tyjTJg65lwSRbW6jQE5POXCfIb8"


@pytest.mark.parametrize(
    ("text", "masked", "leaked"),
    [
        # aiohttp's own error for an oversized header (issue 23, finding 4).
        (
            f"Got more than 8190 bytes when reading: b'Bearer {TOKEN}AAAAAAAAA...'.",
            "Got more than 8190 bytes when reading: b'Bearer ********'.",
            TOKEN,
        ),
        (f"token {TOKEN} revoked", "token odt_******** revoked", TOKEN),
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ********", TOKEN),
        ("{'Authorization': 'Basic dXNlcjpwYXNz'}", "{'Authorization': 'Basic ********'}", "dXNl"),
        ("Authorization: opaque-value-1", "Authorization: ********", "opaque-value-1"),
        (
            "https://user:pass-1@hooks.example/x?token=abc123&b=1",
            "https://user:********@hooks.example/x?token=********&b=1",
            "abc123",
        ),
        (
            "GET /x?access_token=tok-9&sig=s1g HTTP/1.1",
            "GET /x?access_token=********&sig=******** HTTP/1.1",
            "tok-9",
        ),
        ("host=db password=hunter2 user=x", "host=db password=******** user=x", "hunter2"),
        ("Action: Login\r\nSecret: s3cret\r\n", "Action: Login\r\nSecret: ********\r\n", "s3cret"),
        ('{"x-api-key": "k-123", "a": 1}', '{"x-api-key": "********", "a": 1}', "k-123"),
        # Not credentials: kept as they are.
        ("token 'crm' lacks the scope dnc:write", "token 'crm' lacks the scope dnc:write", ""),
        ("password authentication failed for user", "password authentication failed for user", ""),
        ("signal: 15, keys: 3", "signal: 15, keys: 3", ""),
    ],
)
def test_credentials_are_masked_wherever_they_appear(text: str, masked: str, leaked: str) -> None:
    out = RedactingFilter().redact(text)
    assert out == masked
    assert not leaked or leaked not in out


@pytest.mark.parametrize("logger", ["aiohttp.server", "aiohttp.access", "aiohttp.web"])
def test_aiohttp_loggers_pass_the_same_filter(restore_logging: None, logger: str) -> None:
    stream = io.StringIO()
    setup_logging(LogSettings(), stream=stream)
    try:
        raise ValueError(f"b'Bearer {TOKEN}'")
    except ValueError:
        logging.getLogger(logger).exception("Error handling request from %s", "127.0.0.1")
    logging.getLogger(logger).info('127.0.0.1 "GET /v1/x?token=%s HTTP/1.1" 401', TOKEN)
    out = stream.getvalue()
    assert "Error handling request" in out and "GET /v1/x?token=odt_********" in out
    assert TOKEN not in out and TOKEN[4:20] not in out


def test_default_config_has_no_secrets() -> None:
    assert config_secrets(Config()) == []


def test_unknown_level_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="unknown level 'LOUD'"):
        LogSettings(level="LOUD")


def test_journald_lines_carry_no_second_timestamp() -> None:
    record = logging.LogRecord("outdial", logging.INFO, __file__, 1, "ready", None, None)
    assert plain_formatter({"JOURNAL_STREAM": "8:1234"}).format(record) == "INFO outdial: ready"
    assert plain_formatter({}).format(record).endswith("INFO outdial: ready")


def test_the_pools_retries_during_an_outage_are_not_warnings(restore_logging: None) -> None:
    """asyncpg logged a WARNING with a traceback on every retry of its connection floor while
    PostgreSQL was down (bench/chaos.py); the health monitor's lost/back lines say it once."""
    stream = io.StringIO()
    setup_logging(LogSettings(), stream=stream)
    setup_logging(LogSettings(), stream=stream)  # set up twice: still one filter
    pool = logging.getLogger("asyncpg.pool")
    for _ in range(3):
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except ConnectionRefusedError:
            pool.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
    pool.warning("something else about the pool")
    out = stream.getvalue()
    assert "connection floor" not in out and "Traceback" not in out
    assert "WARNING asyncpg.pool: something else about the pool" in out
