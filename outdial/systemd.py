"""sd_notify without libsystemd: READY, WATCHDOG, STOPPING and STATUS for `Type=notify`.

systemd passes a datagram socket in `$NOTIFY_SOCKET` (a path, or an abstract name written
with a leading `@`). Each message is `KEY=value` lines in one datagram. Notifications are
best effort: outside systemd, or if the socket is gone, they are no-ops, never errors.

The watchdog must be fed from the event loop itself (not a thread), so that a blocked loop
stops the pings and systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to the service manager; a no-op when there is none."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def _target(self) -> str:
        assert self.address is not None
        # Abstract namespace sockets are written "@name" and addressed as "\0name".
        return "\0" + self.address[1:] if self.address.startswith("@") else self.address

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` fields in one datagram; False if nothing could be sent."""
        if self.address is None:
            return False
        payload = "\n".join(fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._target())
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        # systemd >= 253 wants MONOTONIC_USEC with RELOADING=1 to order it against READY=1.
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        # One line: a newline would start a new (bogus) field.
        return self.notify(f"STATUS={' '.join(text.split())}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of `WATCHDOG_USEC`), or None when no watchdog is asked for.

    `WATCHDOG_PID`, when set, names the process meant to ping; a child that inherited the
    environment must stay quiet.
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not an integer", raw)
        return None
    if usec <= 0:
        log.warning("ignoring WATCHDOG_USEC=%r: not positive", raw)
        return None
    return usec / 2 / 1_000_000


async def watchdog_loop(notifier: Notifier, interval: float) -> None:
    """Ping every `interval` seconds until cancelled."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


def start_watchdog(
    notifier: Notifier, environ: Mapping[str, str] | None = None
) -> asyncio.Task[None] | None:
    """Start pinging from the running loop if systemd asked for a watchdog; keep the task."""
    interval = watchdog_interval(environ)
    if interval is None or not notifier.enabled:
        return None
    log.info("systemd watchdog: pinging every %.1f s", interval)
    return asyncio.get_running_loop().create_task(
        watchdog_loop(notifier, interval), name="sd-watchdog"
    )
