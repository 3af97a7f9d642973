"""One shared 20 ms clock per process that moves every call's customer audio.

A sleeping task per call costs a timer and a wake-up each; one ticker walking a list of sources
keeps hundreds of calls on time. Ticks are scheduled at `t0 + n * period` so lateness does not
accumulate (drift correction): a late tick fires at once and the next one is on schedule again.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from pbxsim.audiosocket import FRAME_SECONDS


class FrameSource(Protocol):
    def tick(self) -> bool:
        """Emit one frame; return False to be removed from the ticker."""


class Ticker:
    def __init__(self, speed: float = 1.0) -> None:
        self.period = FRAME_SECONDS / speed
        self._sources: list[FrameSource] = []
        self._handle: asyncio.TimerHandle | None = None
        self._t0 = 0.0
        self._n = 0

    def add(self, source: FrameSource) -> None:
        self._sources.append(source)
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._t0 = loop.time()
            self._n = 0
            self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._n += 1
        self._handle = loop.call_at(self._t0 + self._n * self.period, self._tick)

    def _tick(self) -> None:
        self._sources = [s for s in self._sources if s.tick()]
        if self._sources:
            self._schedule(asyncio.get_running_loop())
        else:
            self._handle = None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._sources.clear()
