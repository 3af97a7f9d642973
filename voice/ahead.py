"""Replies synthesised ahead: while the customer listens to a question and answers it, the
replies its expected answers lead to are synthesised in the background lane, so the one
that is needed plays at once instead of queueing on Piper behind other calls' replies.

Audio stays in memory (it may hold lead data). A reply still being made when it is needed
is followed sentence by sentence rather than started again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from voice.tts import TtsEngine


class AheadSynthesis:
    """One text being synthesised sentence by sentence in the background lane, for one later
    listener: a reply made ahead, or the rest of a reply whose first clause is playing."""

    def __init__(self, tts: TtsEngine, text: str, pace: float = 1.0) -> None:
        self.chunks: list[bytes] = []
        self.error: Exception | None = None
        self._finished = False
        self._progress = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(tts, text, pace))

    @property
    def started(self) -> bool:
        """Some audio is ready (or the synthesis is over): following it beats starting anew."""
        return bool(self.chunks) or (self._finished and self.error is None)

    def cancel(self) -> None:
        self._task.cancel()

    async def _run(self, tts: TtsEngine, text: str, pace: float) -> None:
        try:
            async for pcm in tts.stream(text, urgent=False, pace=pace):
                self.chunks.append(pcm)
                self._progress.set()
        except Exception as exc:  # surfaces in follow(), if anyone follows
            self.error = exc
        finally:
            self._finished = True
            self._progress.set()

    async def follow(self) -> AsyncIterator[bytes]:
        """Every sentence in order: those ready at once, the rest as they are made."""
        sent = 0
        while True:
            while sent < len(self.chunks):
                yield self.chunks[sent]
                sent += 1
            if self._finished:
                if self.error is not None:
                    raise self.error
                return
            self._progress.clear()
            await self._progress.wait()
