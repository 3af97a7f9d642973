"""Credentials masked in text: what the log filter and `outdial config show` share.

Masked wherever they appear in a line: API bearer tokens (`odt_...`), the value of an
`Authorization` header or of any `Bearer`/`Basic` credential, passwords in URLs
(`scheme://user:password@`), and the values of token-like keys in query strings, headers,
DSNs and reprs (`?token=...`, `Secret: ...`, `password=...`, `'api_key': '...'`).
Deliberately greedy, like the phone-number mask: a false positive costs a readable value,
a miss costs a credential.
"""

from __future__ import annotations

import re

MASK = "********"

_API_TOKEN = re.compile(r"odt_[A-Za-z0-9_\-]{4,}")
_AUTH_SCHEME = re.compile(r"(?i)\b(?P<scheme>bearer|basic|digest)\s+[A-Za-z0-9._~+/=\-]{4,}")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*):[^@/\s]+@")
# A secret-looking key, then `=` or `:` and the value, optionally quoted (headers, query
# strings, libpq DSNs, dict reprs). `_token`, `-key` suffixes count: csrf_token, x-api-key.
_SECRET_KEY = (
    r"(?:proxy-)?authorization|cookie|set-cookie|secret|client[_-]?secret|password|passwd|pwd"
    r"|passphrase|token|[a-z]*[_-]token|api[_-]?key|x-api-key|access[_-]?key|sig|signature"
)
_KEY_VALUE = re.compile(
    rf"(?i)(?P<key>(?<![A-Za-z0-9])(?:{_SECRET_KEY})['\"]?\s*[:=]\s*['\"]?)"
    r"(?:(?P<scheme>bearer|basic|digest)\s+)?"
    r"(?P<value>[^\s'\"&;,)\]}]+)"
)


def mask_secrets(text: str) -> str:
    """`text` with every credential the patterns above find replaced by ********."""
    text = _AUTH_SCHEME.sub(lambda m: f"{m['scheme']} {MASK}", text)
    text = _API_TOKEN.sub("odt_" + MASK, text)
    text = _URL_PASSWORD.sub(rf"\g<scheme>:{MASK}@", text)
    return _KEY_VALUE.sub(_masked_value, text)


def _masked_value(match: re.Match[str]) -> str:
    if match["value"] == MASK or match["value"].endswith(MASK):
        return match[0]
    scheme = f"{match['scheme']} " if match["scheme"] else ""
    return f"{match['key']}{scheme}{MASK}"
