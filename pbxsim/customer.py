"""The customer's leg of a call: their mouth (audio on the wire, framed as the line frames
it), their ears (when the bot is talking) and the scenario's steps they follow."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from pbxsim import audiosocket
from pbxsim.audio import step_source
from pbxsim.audiosocket import BotFrame
from pbxsim.impatient import ImpatientCustomer
from pbxsim.records import Said
from pbxsim.scenario import (
    BargeInStep,
    DtmfStep,
    HangupStep,
    Media,
    SayStep,
    SayTextStep,
    SilenceStep,
    WaitForBotStep,
)

if TYPE_CHECKING:
    from pbxsim.call import Call

VOICED_RMS = 0.01 * 32768  # the customer is talking: 1 % of full scale, as pbxsim.wire hears
DTMF_SPACING = 0.35  # SendDTMF: 100 ms tone + 250 ms gap, as captured (1.715, 2.066, 2.416 s)
# A line's echo is the hybrid's: the bot's own audio back after a short fixed delay (tens of
# ms), whatever the customer's side is doing. At most this much of it waits to be sent, so a
# tick the customer's side missed drops echo rather than delaying all that follows.
ECHO_DELAY_S = 0.04
ECHO_BACKLOG_FRAMES = 2
# A bot frame heard this recently means the bot is talking now (two frames, for jitter).
AUDIBLE_NOW_S = 0.04


class Mouth:
    """The customer's outgoing audio, sent on the shared 20 ms ticker as the line frames it
    (scenario `media`): whole 20 ms frames with a partial last one, or random even lengths,
    at the line's rate, and line noise in silence on a trunk."""

    def __init__(self, call: Call, media: Media, seed: int) -> None:
        self.call = call
        self.media = media
        self.kind = audiosocket.AUDIO_KINDS[media.kind]
        self.frame_bytes = media.rate // 50 * 2
        self.rng = random.Random(seed)
        self.clip = b""
        self.pos = 0
        self.owed = 0  # random framing: bytes due on the line but not sent yet
        self.done: asyncio.Future[None] | None = None
        self.on_ticker = False
        self._noise = _line_noise(media) if media.line == "trunk" else b""
        self._noise_pos = 0
        self._echo_gain = None if media.echo_db is None else 10 ** (media.echo_db / 20)
        # The bot's audio, attenuated, by when it echoes back; then what is due but not sent.
        self._echo_due: deque[tuple[float, bytes]] = deque()
        self._echo = bytearray()
        self.said: Said | None = None
        self._voiced: np.ndarray = np.zeros(0, bool)  # per 20 ms of the clip

    def play(self, clip: bytes, said: Said) -> asyncio.Future[None]:
        self.clip, self.pos, self.owed = clip, 0, 0
        self.said, self._voiced = said, _voiced_frames(clip, self.frame_bytes)
        self.done = asyncio.get_running_loop().create_future()
        self._run()
        return self.done

    def open_line(self) -> None:
        """The media connected: a trunk sends its noise from now on."""
        if self._noise:
            self._run()

    def _run(self) -> None:
        if not self.on_ticker:
            self.on_ticker = True
            self.call.sim.ticker.add(self)

    def stop(self) -> None:
        self.clip = b""
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def tick(self) -> bool:
        if self.pos < len(self.clip):
            self._speak()
            if self.pos >= len(self.clip):
                self.stop()
            return True
        self.stop()
        if self._noise and self.call.media is not None and not self.call.customer_gone.is_set():
            self._hiss()
            return True
        self.on_ticker = False
        return False

    def _speak(self) -> None:
        if self.media.framing == "asterisk":
            # 20 ms frames; the last one is what is left of the clip, unpadded (as captured).
            self._send(self.clip[self.pos : self.pos + self.frame_bytes])
            return
        self.owed += self.frame_bytes
        if self.owed < 2 * self.frame_bytes and self.rng.random() < 0.25:
            return  # held back a tick: it follows with the next
        for size in self._random_sizes(self.owed):
            self._send(self.clip[self.pos : self.pos + size])
            self.owed -= size
            if self.pos >= len(self.clip):
                return

    def _random_sizes(self, owed: int) -> list[int]:
        """One to three messages of random even lengths: everything owed when the source is
        a tick behind, else a random part of it."""
        total = owed if owed >= 2 * self.frame_bytes else self.rng.randrange(2, owed + 1, 2)
        pieces = self.rng.randrange(3) if total > 2 else 0
        cuts = sorted(self.rng.randrange(2, total, 2) for _ in range(pieces))
        edges = [0, *[c for c in cuts if 0 < c < total], total]
        return [b - a for a, b in itertools.pairwise(edges) if b > a]

    def _send(self, payload: bytes) -> None:
        if payload:
            self._note_voiced(self.pos, len(payload))
            self.pos += len(payload)
            self.call.send_frame(self._with_echo(payload), self.kind)

    def _note_voiced(self, start: int, size: int) -> None:
        """Stamp the utterance's first and last voiced 20 ms with the time they went out."""
        first, last = start // self.frame_bytes, (start + size - 1) // self.frame_bytes
        if self.said is None or not self._voiced[first : last + 1].any():
            return
        now = time.monotonic()
        if self.said.first_voiced is None:
            self.said.first_voiced = now
        self.said.last_voiced = now

    def hear_bot(self, payload: bytes) -> None:
        """An echo line hears the bot's audio and sends it back attenuated, ECHO_DELAY_S after
        it arrived."""
        if self._echo_gain is None:
            return
        samples = np.frombuffer(payload[: len(payload) // 2 * 2], "<i2") * self._echo_gain
        self._echo_due.append((time.monotonic() + ECHO_DELAY_S, samples.astype("<i2").tobytes()))

    def _with_echo(self, payload: bytes) -> bytes:
        if self._echo_gain is None:
            return payload
        now = time.monotonic()
        while self._echo_due and self._echo_due[0][0] <= now:
            self._echo += self._echo_due.popleft()[1]
        echo = bytes(self._echo[: len(payload)])
        del self._echo[: len(payload)]
        del self._echo[: max(0, len(self._echo) - ECHO_BACKLOG_FRAMES * self.frame_bytes)]
        echo += bytes(len(payload) - len(echo))
        mixed = np.frombuffer(payload, "<i2").astype(np.int32) + np.frombuffer(echo, "<i2")
        return np.clip(mixed, -32768, 32767).astype("<i2").tobytes()

    def _hiss(self) -> None:
        """One 20 ms frame of the trunk's line noise (a SIP trunk never goes quiet)."""
        noise = self._noise
        frame = (noise + noise)[self._noise_pos : self._noise_pos + self.frame_bytes]
        self._noise_pos = (self._noise_pos + self.frame_bytes) % len(noise)
        self.call.send_frame(self._with_echo(frame), self.kind)


def _voiced_frames(clip: bytes, frame_bytes: int) -> np.ndarray:
    """For each 20 ms of `clip`: is it voiced (RMS at least 1 % of full scale)?"""
    samples = np.frombuffer(clip[: len(clip) // 2 * 2], "<i2").astype(np.float32)
    per_frame = frame_bytes // 2
    padded = np.pad(samples, (0, -len(samples) % per_frame)).reshape(-1, per_frame)
    return np.sqrt((padded * padded).mean(axis=1)) >= VOICED_RMS


def _line_noise(media: Media) -> bytes:
    """One second of white noise at the line's level and rate (looped)."""
    rms = 32768 * 10 ** (media.noise_dbfs / 20)
    samples = np.random.default_rng(7).normal(0.0, rms, media.rate)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


class Ears:
    """Tracks when the bot speaks (energetic `0x10` frames) for wait_for_bot and barge-in."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.last_speech = -1e9
        self.utterance_start = -1e9
        self.spoke = asyncio.Event()

    def hear(self, frame: BotFrame, payload: bytes) -> None:
        if not _is_speech(payload, self.call.sim.config.speech_rms):
            return
        if frame.t - self.last_speech > self.call.gap:
            self.utterance_start = frame.t
        self.last_speech = frame.t
        self.spoke.set()

    def speaking(self) -> bool:
        return time.monotonic() - self.last_speech < self.call.gap

    async def until_bot_starts(self) -> float:
        """Start time of the bot's current (or next) utterance."""
        if not self.speaking():
            self.spoke.clear()
            await self.call.until_bot_unheard(self.spoke.wait())
        return self.utterance_start

    async def until_bot_audible(self) -> None:
        """Until the bot's voice is heard now (at once when it is)."""
        if time.monotonic() - self.last_speech >= AUDIBLE_NOW_S / self.call.sim.config.speed:
            self.spoke.clear()
            await self.call.until_bot_unheard(self.spoke.wait())

    async def until_bot_stops(self) -> None:
        await self.until_bot_starts()
        while self.call.media is not None:
            remaining = self.last_speech + self.call.gap - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)


def _is_speech(payload: bytes, threshold: float) -> bool:
    samples = np.frombuffer(payload[: len(payload) // 2 * 2], "<i2").astype(np.float32)
    return samples.size > 0 and float(np.sqrt(np.mean(samples * samples))) >= threshold


class CustomerLeg:
    """Plays the customer's scenario steps on `;2`: Playback, Wait, SendDTMF, Hangup."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.mouth = Mouth(call, call.media_line, seed=call.sim.scenario.seed * 100_003 + call.seq)
        self.ears = Ears(call)

    async def run(self) -> None:
        call = self.call
        if call.customer.impatience is not None:
            await ImpatientCustomer(call, call.customer.impatience).run()
            return
        await call.sleep(call.customer.answer_delay)
        for step in call.customer.steps:
            if call.customer_gone.is_set():
                return
            if isinstance(step, SayStep | SayTextStep):
                await self._say(step)
            elif isinstance(step, SilenceStep):
                self._app("Wait", f"{step.silence:g}")
                await call.sleep(step.silence)
            elif isinstance(step, DtmfStep):
                self._app("SendDTMF", step.dtmf)
                for digit in step.dtmf:
                    self.send_dtmf(digit)
                    await call.sleep(DTMF_SPACING)
            elif isinstance(step, WaitForBotStep):
                await self.ears.until_bot_stops()
            elif isinstance(step, BargeInStep):
                started = await self.ears.until_bot_starts()
                delay = started + step.barge_in_after / call.sim.config.speed - time.monotonic()
                await asyncio.sleep(max(0.0, delay))
                # Talking over the bot means over its voice, not into a pause between sentences.
                await self.ears.until_bot_audible()
            elif isinstance(step, HangupStep):
                self._app("Hangup", "")
                call.customer_hangs_up()
                return

    def _app(self, app: str, data: str) -> None:
        """The customer leg's next priority runs `app`."""
        self.call.cust.priority += 1
        self.call.events.newexten(self.call.cust, app, data)

    async def _say(self, step: SayStep | SayTextStep) -> None:
        call = self.call
        self._app(
            "Playback", step.say.rsplit(".", 1)[0] if isinstance(step, SayStep) else step.say_text
        )
        agitation = step.agitation or call.customer.agitation
        clip = call.sim.audio.get(step_source(step), agitation, self.mouth.media.rate)
        said = Said(step.mark)
        call.record.said.append(said)
        playing = self.mouth.play(clip, said)
        if step.dtmf:  # keys pressed while talking: DTMF between the audio frames
            await call.sleep(step.dtmf_at)
            for digit in step.dtmf:
                self.send_dtmf(digit)
        await playing
        call.events.set_var(call.cust, "PLAYBACKSTATUS", "SUCCESS")

    def send_dtmf(self, digit: str) -> None:
        call = self.call
        call.record.dtmf_sent.append(digit)
        if call.media is not None and call.media.open:
            call.media.send_dtmf(digit)
