"""Compile librosa's numba kernels ahead of the first call (cached under NUMBA_CACHE_DIR)."""

from __future__ import annotations

import numpy as np

from emotion.features import RATE, extract_features


def warm() -> None:
    """Run the full feature path once on a short synthetic vowel, so no call pays the compile."""
    time = np.arange(RATE // 2) / RATE
    vowel = 0.3 * np.sin(2 * np.pi * 150.0 * time) * (1.0 + 0.5 * np.sin(2 * np.pi * 4.0 * time))
    extract_features(np.round(vowel * 32767 / 1.5).astype(np.int16))
