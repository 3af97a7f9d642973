"""Database sessions the server ends under the code that uses them (issue 17, chaos)."""

from __future__ import annotations

import os
import signal
import time


def end_backend_now(pid: int) -> None:
    """The server ends a session on its own (as a shutdown or restart does), while the event
    loop does not run: its last message and its EOF both wait in the socket for the client."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} still there")
