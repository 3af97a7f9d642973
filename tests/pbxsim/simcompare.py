"""Field-by-field comparison of AMI traffic, ignoring ids, times and addresses."""

from __future__ import annotations

import re
from collections import defaultdict

Fields = list[tuple[str, str]]

IGNORED = {
    "Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid", "LocalOneUniqueid",
    "LocalOneLinkedid", "LocalTwoUniqueid", "LocalTwoLinkedid", "CommandId", "SessionID",
    "EventTV", "SessionTV", "LocalAddress", "RemoteAddress", "Uptime", "LastReload",
    "Timestamp", "Duration", "Seconds",
}  # fmt: skip
_SEQ = re.compile(r"-[0-9a-f]{8};")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_AGI_PORT = re.compile(r"127\.0\.0\.1:\d+")


def normalize(msg: Fields) -> tuple[tuple[str, str], ...]:
    out = []
    for key, value in msg:
        if key in IGNORED:
            value = "<ignored>" if value != "<unknown>" else value
        value = _SEQ.sub("-N;", value)
        value = _UUID.sub("<uuid>", value)
        value = _AGI_PORT.sub("127.0.0.1:<port>", value)
        if key in ("AppData", "ApplicationData") and "/" in value and "://" not in value:
            value = value.rsplit("/", 1)[-1]  # Playback of a file: compare the name only
        out.append((key, value))
    return tuple(out)


def stream_keys(msg: Fields) -> list[str]:
    """Which ordered streams a message belongs to: one per channel leg, plus replies."""
    d = dict(msg)
    event = d.get("Event")
    if event is None or "ActionID" in d and event != "OriginateResponse":
        return ["replies"]
    if event == "OriginateResponse":
        return [f"originate {d.get('ActionID')}"]
    if event == "LocalBridge":
        return [_leg(d["LocalOneChannel"]), _leg(d["LocalTwoChannel"])]
    chan = d.get("Channel") or d.get("DestChannel")
    return [_leg(chan)] if chan else ["system"]


def _leg(channel: str) -> str:
    return _SEQ.sub("-N;", channel)


def streams(messages: list[Fields]) -> dict[str, list[tuple[tuple[str, str], ...]]]:
    out: dict[str, list[tuple[tuple[str, str], ...]]] = defaultdict(list)
    for msg in messages:
        for key in stream_keys(msg):
            out[key].append(normalize(msg))
    return dict(out)


def assert_same_streams(expected: list[Fields], actual: list[Fields]) -> None:
    """Same streams, and in each the same messages in the same order with the same fields."""
    want, got = streams(expected), streams(actual)
    assert sorted(got) == sorted(want), f"streams differ: {sorted(got)} != {sorted(want)}"
    for key in want:
        for i, (w, g) in enumerate(zip(want[key], got[key], strict=False)):
            assert g == w, f"{key} message {i}:\nexpected {w}\n     got {g}"
        assert len(got[key]) == len(want[key]), (
            f"{key}: {len(got[key])} messages, expected {len(want[key])}: "
            f"extra/missing {got[key][len(want[key]) :] or want[key][len(got[key]) :]}"
        )
