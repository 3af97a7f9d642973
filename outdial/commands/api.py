"""`outdial api ...`: tokens for the HTTP API, and its OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from api.openapi import document_text
from api.server import OPERATIONS
from api.tokens import (
    SCOPES,
    TokenError,
    create_token,
    revoke_token,
)
from outdial.config import Config
from outdial.context import cli_state, run_async
from outdial.errors import UserError
from store.db import Database
from store.tokens import TokenInfo, list_tokens

app = typer.Typer(help="The HTTP API: tokens and the OpenAPI document.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (bearer secrets with scopes).", no_args_is_help=True)
app.add_typer(token_app, name="token")

T = TypeVar("T")


def _with_db(config: Config, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def _run() -> T:
        try:
            db = await Database.open(config.database, config.state_dir)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise UserError(f"cannot open the database: {exc}") from exc
        try:
            async with db.pool.acquire() as conn:
                return await work(conn)
        except TokenError as exc:
            raise UserError(str(exc)) from exc
        finally:
            await db.close()

    return run_async(_run())


@token_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who uses the token, e.g. crm-prod.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", "-s", help=f"Repeat for each scope: {', '.join(SCOPES)}."),
    ],
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    config = cli_state(ctx).loaded.config
    secret = _with_db(config, lambda conn: create_token(conn, name, scope))
    Console(stderr=True).print(f"token {name} created; it is shown once, store it now:")
    typer.echo(secret)


@token_app.command("list")
def list_(
    ctx: typer.Context,
    revoked: Annotated[bool, typer.Option("--revoked", help="Show revoked tokens too.")] = False,
) -> None:
    """Tokens with their scopes (never the secrets)."""
    config = cli_state(ctx).loaded.config
    tokens: list[TokenInfo] = _with_db(
        config, lambda conn: list_tokens(conn, include_revoked=revoked)
    )
    table = Table("name", "scopes", "created", "revoked")
    for t in tokens:
        revoked_at = t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "-"
        table.add_row(
            t.name, " ".join(t.scopes), t.created_at.isoformat(timespec="seconds"), revoked_at
        )
    Console().print(table)


@token_app.command("revoke")
def revoke(ctx: typer.Context, name: str) -> None:
    """Revoke a token: every daemon on the database refuses it from its next request on."""
    config = cli_state(ctx).loaded.config
    _with_db(config, lambda conn: revoke_token(conn, name))
    Console().print(f"revoked {name}")


@app.command("openapi")
def openapi() -> None:
    """Print the OpenAPI document the daemon serves at /openapi.json."""
    typer.echo(document_text(OPERATIONS), nl=False)
