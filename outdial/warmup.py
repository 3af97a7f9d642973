"""One-time warm-up at install: compile librosa's numba kernels into NUMBA_CACHE_DIR.

`make` runs this once after installing, so neither the first test nor the first call pays the
~25 s numba compile (NOTES §4). The daemon runs the same warm-up at start.
"""

from __future__ import annotations

import time

from emotion.warmup import warm


def main() -> None:
    started = time.perf_counter()
    warm()
    print(f"warm-up done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
