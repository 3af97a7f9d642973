"""One-time warm-up at install: compile librosa's numba kernels into NUMBA_CACHE_DIR.

`make` runs this once after installing, so neither the first test nor the first call pays the
~25 s numba compile (NOTES §4). It is also safe to run at daemon start.
"""

from __future__ import annotations

import importlib
import time


def main() -> None:
    started = time.perf_counter()
    try:
        warm = importlib.import_module("emotion.warmup").warm
    except ModuleNotFoundError:
        # Before the emotion package exists, warming librosa's yin directly is equivalent.
        import librosa
        import numpy as np

        def warm() -> None:
            librosa.yin(np.zeros(4000, dtype=np.float32), fmin=80, fmax=400, sr=8000)

    warm()
    print(f"warm-up done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
