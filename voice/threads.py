"""Executors for model work, with the OS told which of it may wait.

On two cores the event loop (the 20 ms media clock), speech recognition and the first clause
of a reply have a caller waiting; the rest of a reply and replies synthesised ahead do not.
The background lanes run at a lower scheduling priority (a higher nice value, per thread on
Linux), so when the CPU is saturated the kernel runs urgent work first instead of sharing
it out evenly.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

BACKGROUND_NICE = 10


def _lower_priority() -> None:
    # Unprivileged threads may always lower their own priority; where the OS has no
    # per-thread priorities the lane simply runs at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(current, BACKGROUND_NICE))


def urgent_executor(workers: int, name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)


def background_executor(workers: int, name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix=name, initializer=_lower_priority
    )
