"""A failed call's ending: an apology while the line still carries audio, then the script's
fallback (a hand-over to people, else a goodbye). Settled `error`: the lead is called again."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

from agi.call.outcome import fallback_transfer
from agi.call.recording import Recording
from agi.call.speaking import Speaking
from dialog import Script
from dialog.templates import is_static, render


class Fallback:
    def __init__(
        self,
        script: Script,
        speaking: Speaking,
        recording: Recording,
        line_open: Callable[[], bool],
    ) -> None:
        """`line_open` says whether the customer is still there and our audio reaches them."""
        self._script = script
        self._speaking = speaking
        self._recording = recording
        self._line_open = line_open

    async def run(self, stage: str, variables: Mapping[str, object]) -> None:
        """The call failed while `stage`; `variables` fill the fallback texts."""
        self._recording.failed(stage)
        await self._speaking.abandon()
        await self._say(self._script.error_apology(), variables)
        transfer = fallback_transfer(self._script, stage) if self._line_open() else None
        if transfer is not None:
            self._recording.handed_over(transfer)
        else:
            await self._say(self._script.error_goodbye(), variables)

    async def _say(self, template: str, variables: Mapping[str, object]) -> None:
        """Speak one fallback text and wait until it has been played (bounded)."""
        if not self._line_open():
            return
        text = render(template, defaultdict(str, variables))
        if await self._speaking.say_now(text, cached=is_static(template)):
            self._recording.fallback_turn(text)
