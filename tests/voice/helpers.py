"""Shared test helpers for the voice package: fixture paths and feeding audio to sessions."""

from __future__ import annotations

from pathlib import Path

from voice.asr import AsrEvent, AsrFinal, AsrSession
from voice.audio import FRAME_S, iter_frames, read_wav, rms_dbfs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "audio"

# The closed-question grammar the fixtures were verified against (README.md in FIXTURES).
DEMO_GRAMMAR = ["네", "아니요", "아뇨", "좋아요", "상담원 연결", "여보세요"]


def fixture_pcm(name: str) -> bytes:
    return read_wav(FIXTURES / f"{name}.wav")


async def feed_pcm(session: AsrSession, pcm: bytes, start: float = 0.0) -> list[AsrEvent]:
    """Feed `pcm` frame by frame at real-time spacing; the events that came out."""
    events: list[AsrEvent] = []
    now = start
    for frame in iter_frames(pcm):
        now += FRAME_S
        event = await session.feed(frame, now)
        if event is not None:
            events.append(event)
    return events


# A line that sends nothing in silence (Asterisk on a Local channel, pbxsim's default line):
# nothing before the first frame at 1 % of full scale or after the last; the clock still ticks.
AUDIBLE_DBFS = -40.0


async def feed_pcm_sending_no_silence(
    session: AsrSession, pcm: bytes, tail_s: float = 1.2
) -> list[AsrEvent]:
    """Feed `pcm` from its first audible frame to its last (its pauses included, as a caller's
    clip plays them) at real-time spacing; only tick the clock before, after and for `tail_s`
    more. The events that came out."""
    frames = list(iter_frames(pcm))
    audible = _audible(frames)
    events: list[AsrEvent | None] = []
    now = 0.0
    for i in range(len(frames) + round(tail_s / FRAME_S)):
        now += FRAME_S
        if audible and audible[0] <= i <= audible[-1]:
            events.append(await session.feed(frames[i], now))
        else:
            events.append(await session.tick(now))
    return [e for e in events if e is not None]


async def feed_audible_part(session: AsrSession, pcm: bytes) -> float:
    """Feed `pcm` from its first audible frame to its last at real-time spacing, from 0.0,
    and nothing after: the time of the last frame fed (the clock is the caller's to tick)."""
    frames = list(iter_frames(pcm))
    audible = _audible(frames)
    now = 0.0
    for frame in frames[audible[0] : audible[-1] + 1]:
        now += FRAME_S
        await session.feed(frame, now)
    return now


def _audible(frames: list[bytes]) -> list[int]:
    return [i for i, frame in enumerate(frames) if rms_dbfs(frame) >= AUDIBLE_DBFS]


def finals(events: list[AsrEvent]) -> list[AsrFinal]:
    return [e for e in events if isinstance(e, AsrFinal)]
