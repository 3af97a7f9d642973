"""Errors the CLI turns into a one-line message and exit code 1 (no traceback)."""


class UserError(Exception):
    """Something the operator can fix: a bad file, a missing campaign, an unreachable database."""
