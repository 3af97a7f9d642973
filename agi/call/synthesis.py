"""How a prompt's audio is made, fastest way first: the on-disk prompt cache for text made
from the script alone, the reply synthesised ahead while the caller answered, or Piper now
with the short first clause on its own so the reply starts sooner."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from agi import faults, metrics
from agi.audiosocket import Playback
from dialog import Say
from voice.ahead import AheadSynthesis
from voice.tts import TtsEngine, split_first_clause


class PromptSynthesis:
    def __init__(self, tts: TtsEngine, default_opening: str | None, campaign: str | None) -> None:
        self._tts = tts
        self._default_opening = default_opening
        self._campaign = campaign
        # (reply text, pace) -> its audio: a reply made at another pace is other audio.
        self._ahead: dict[tuple[str, float], AheadSynthesis] = {}

    def cacheable(self, say: Say) -> bool:
        """Only text made from the script alone goes through the on-disk prompt cache: static
        texts, and the opening as the script's defaults render it. An opening that carries a
        lead's data ("Hi {customer_name}, ...") is streamed and never written to disk."""
        return say.static or (say.node == "identification" and say.text == self._default_opening)

    def expect(self, replies: list[Say]) -> None:
        """Replies to the answers this question expects, synthesised ahead (voice/ahead.py);
        the unused ones are dropped at the next question."""
        wanted = [(s.text, s.pace) for s in replies if not self.cacheable(s)]
        for key in [k for k in self._ahead if k not in wanted]:
            _drop(self._ahead.pop(key))
        for key in wanted:
            if key not in self._ahead:  # a re-prompt keeps what is under way
                self._ahead[key] = AheadSynthesis(self._tts, *key)

    def claim(self, say: Say) -> AheadSynthesis | None:
        """The reply made ahead for `say`, taken now: the question that follows this prompt
        replaces the replies ahead."""
        return self._ahead.pop((say.text, say.pace), None)

    def drop_all(self) -> None:
        for ahead in self._ahead.values():
            _drop(ahead)
        self._ahead.clear()

    async def produce(self, say: Say, playback: Playback, ahead: AheadSynthesis | None) -> None:
        """Feed the prompt's audio to its playback as it is made."""
        started = time.monotonic()
        if self.cacheable(say):
            playback.feed(await self._tts.render(say.text, say.pace))
            faults.hit(faults.SYNTHESIS, node=say.node, campaign=self._campaign)
            metrics.TTS_SECONDS.observe(time.monotonic() - started)
            playback.finish()
            return
        if say.node == "identification":
            # The caller hears nothing before the greeting: all of it on the urgent lane.
            await self._play(say, playback, self._urgently(say.text, say.pace), started)
            return
        if ahead is not None and ahead.started:
            metrics.REPLIES_AHEAD.labels("used").inc()
            await self._play(say, playback, ahead.follow(), started)
            return
        if ahead is not None:  # nothing made yet: the urgent lane below is quicker than waiting
            _drop(ahead, "late")
        # A short first clause is synthesised on its own so the reply starts sooner; the
        # rest is synthesised at the same time, in the background lane, and follows it.
        head, tail = split_first_clause(say.text)
        if not head:
            await self._play(say, playback, self._tts.stream(tail, pace=say.pace), started)
            return
        rest = AheadSynthesis(self._tts, tail, say.pace)
        try:
            chunks = self._head_then_rest(head, rest, say.pace)
            await self._play(say, playback, chunks, started)
        finally:
            rest.cancel()

    async def whole(self, text: str, cached: bool) -> bytes:
        """All of one text's audio at once (the fallback speech of a failed call)."""
        if cached:  # pre-rendered when the script loaded
            return await self._tts.render(text)
        return b"".join([pcm async for pcm in self._tts.stream(text)])  # lead data: never cached

    async def _urgently(self, text: str, pace: float) -> AsyncIterator[bytes]:
        """The short first clause, then the rest, both synthesised on the urgent lane."""
        for part in split_first_clause(text):
            if part:
                async for pcm in self._tts.stream(part, pace=pace):
                    yield pcm

    async def _head_then_rest(
        self, head: str, rest: AheadSynthesis, pace: float
    ) -> AsyncIterator[bytes]:
        async for pcm in self._tts.stream(head, pace=pace):
            yield pcm
        async for pcm in rest.follow():  # a synthesis error of the rest surfaces here
            yield pcm

    async def _play(
        self, say: Say, playback: Playback, chunks: AsyncIterator[bytes], started: float
    ) -> None:
        """Feed the audio to the playback as it comes; time the first chunk."""
        first = True
        async for pcm in chunks:
            playback.feed(pcm)
            if first:
                metrics.TTS_SECONDS.observe(time.monotonic() - started)
                first = False
                faults.hit(faults.SYNTHESIS, node=say.node, campaign=self._campaign)
        playback.finish()


def _drop(ahead: AheadSynthesis, disposition: str = "unused") -> None:
    ahead.cancel()
    metrics.REPLIES_AHEAD.labels(disposition).inc()
