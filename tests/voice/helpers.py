"""Shared test helpers for the voice package: fixture paths and feeding audio to sessions."""

from __future__ import annotations

from pathlib import Path

from voice.asr import AsrEvent, AsrFinal, AsrSession
from voice.audio import FRAME_S, iter_frames, read_wav

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


def finals(events: list[AsrEvent]) -> list[AsrFinal]:
    return [e for e in events if isinstance(e, AsrFinal)]
