"""sd_notify against a real datagram socket standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from outdial.systemd import Notifier, start_watchdog, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def _recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_state_messages_reach_the_socket(notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready(status="3 calls")
    assert _recv(sock) == ["READY=1", "STATUS=3 calls"]
    assert notifier.status("draining\n2 calls left")
    assert _recv(sock) == ["STATUS=draining 2 calls left"]
    assert notifier.watchdog()
    assert _recv(sock) == ["WATCHDOG=1"]
    assert notifier.reloading()
    reload_fields = _recv(sock)
    assert reload_fields[0] == "RELOADING=1" and reload_fields[1].startswith("MONOTONIC_USEC=")
    assert int(reload_fields[1].split("=")[1]) > 0
    assert notifier.stopping()
    assert _recv(sock) == ["STOPPING=1"]
    notifier.close()


def test_abstract_socket_names() -> None:
    name = f"outdial-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        notifier = Notifier(f"@{name}")
        assert notifier.ready()
        assert _recv(sock) == ["READY=1"]
    finally:
        sock.close()


def test_without_systemd_everything_is_a_no_op(tmp_path: Path) -> None:
    assert not Notifier.from_environ({}).enabled
    assert Notifier.from_environ({}).ready() is False
    gone = Notifier(str(tmp_path / "no-such-socket"))
    assert gone.ready() is False  # logged, never raised


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env) == expected


async def test_watchdog_task_pings_from_the_loop(notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    sock.setblocking(False)
    notifier = Notifier(address)
    task = start_watchdog(notifier, {"WATCHDOG_USEC": "40000"})
    assert task is not None
    loop = asyncio.get_running_loop()
    try:
        pings = [await asyncio.wait_for(loop.sock_recv(sock, 64), 5) for _ in range(3)]
    finally:
        task.cancel()
    assert pings == [b"WATCHDOG=1"] * 3
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_no_watchdog_task_without_a_socket_or_a_request() -> None:
    assert start_watchdog(Notifier(None), {"WATCHDOG_USEC": "40000"}) is None
    assert start_watchdog(Notifier("/run/x"), {}) is None
