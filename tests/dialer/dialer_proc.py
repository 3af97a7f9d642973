"""One Dialer in a process of its own, run until killed (the outbox crash test SIGKILLs it).

Usage: python -m tests.dialer.dialer_proc DATABASE_URL DIALER_JSON TRUNK_JSON
"""

from __future__ import annotations

import asyncio
import sys

from dialer.engine import Dialer
from dialer.settings import DialerSettings, TrunkSettings
from store.db import create_pool
from store.settings import DatabaseSettings


async def main(url: str, dialer_json: str, trunk_json: str) -> None:
    pool = await create_pool(url, DatabaseSettings())
    settings = DialerSettings.model_validate_json(dialer_json)
    dialer = Dialer(pool, settings, [TrunkSettings.model_validate_json(trunk_json)])
    await dialer.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
