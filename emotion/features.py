"""Per-utterance prosody features from telephone audio: pitch, loudness, pace and pauses.

Frames are 32 ms long with a 20 ms hop (one AudioSocket frame), which at 8 kHz fits two
periods of the lowest pitch searched (65 Hz) and keeps `librosa.yin` around 1 ms per 3 s.
A frame is *active* (speech) when it is loud enough, and *voiced* when it is active and also
periodic: the signal correlates with itself one yin period later. Pitch and loudness statistics
use voiced frames only, so breath, fricatives and line noise do not bend them. Frames yin reads
at a harmonic or at twice the period are read back along a continuity path (`follow_pitch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import soxr

RATE = 8000
FRAME_LENGTH = 256
HOP_LENGTH = 160
FMIN_HZ = 65.0
FMAX_HZ = 500.0
# Semitones are measured from A1 (55 Hz), below any speaking voice, so they are all positive.
SEMITONE_REFERENCE_HZ = 55.0

# A frame is active when it is within this much of the utterance's loudest frame and above an
# absolute floor that sits over a normal telephone line's noise.
_ACTIVE_RANGE_DB = 35.0
_ACTIVE_FLOOR_DBFS = -50.0
# Normalised self-correlation at the yin period above which a frame counts as voiced.
_PERIODICITY_THRESHOLD = 0.6
# Syllable nuclei: peaks in the smoothed voiced-energy envelope this prominent and this far apart
# (60 ms caps the count at about 16 per second, above any speaker).
_PEAK_PROMINENCE_DB = 2.0
_PEAK_MIN_DISTANCE_FRAMES = 3
_ENVELOPE_SMOOTHING_FRAMES = 2
# Below this many voiced frames (100 ms) an utterance has no usable pitch or loudness.
MIN_VOICED_FRAMES = 5

_EPSILON = 1e-10
# Internal silences shorter than 100 ms are stop closures, not pauses.
_MIN_PAUSE_FRAMES = 5
# Spectral tilt: Hann-windowed frames, bands by FFT bin, and the noise estimate's limits.
_WINDOW = np.hanning(FRAME_LENGTH)
_BIN_HZ = np.fft.rfftfreq(FRAME_LENGTH, 1.0 / RATE)
_LOW_BAND = (_BIN_HZ >= 300.0) & (_BIN_HZ < 1000.0)
_HIGH_BAND = (_BIN_HZ >= 1000.0) & (_BIN_HZ <= 3400.0)
_MIN_NOISE_FRAMES = 3
_NOISE_FLOOR_PERCENTILE = 10
_SPECTRAL_FLOOR = 0.05
# The frame-wise tracker's usual errors on a line with no fundamental below 300 Hz: a frame read
# at the 2nd, 3rd or 4th harmonic (a 100 Hz voice's 3rd harmonic is the lowest the line
# passes) or at twice the period. Each voiced frame may be read back by one of these ratios.
_HARMONIC_RATIOS = np.array([1.0, 0.5, 2.0, 3.0, 4.0])
_RATIO_OFFSETS_ST = 12.0 * np.log2(_HARMONIC_RATIOS)
# Path costs, in semitones (chosen on the tune split and a low creaky tune voice, see
# docs/benchmarks.md, issue 20, third round): reading a frame by a ratio other than 1 costs as
# much as being this far off the utterance's centre, each semitone off the centre costs
# _CENTRE_COST and each semitone jumped between neighbouring voiced frames _JUMP_COST.
_RATIO_COST_ST = 4.0
_CENTRE_COST = 0.5
_JUMP_COST = 0.5
# Neighbouring voiced frames at most this many hops apart are one stretch of voice; across a
# longer gap the pitch may restart anywhere (only the centre holds it).
_MAX_JUMP_GAP_FRAMES = 2
# The utterance's centre: where the most frames' readings agree within this many semitones.
_CENTRE_WIDTH_ST = 2.0
_CENTRE_STEP_ST = 0.5
# Readings by another ratio count half as much as the tracker's own towards the centre.
_OTHER_RATIO_VOTE = 0.5
# Spectral envelope (speaker identity): mel bands of the line's voice band, cepstral
# coefficients 1..ENVELOPE_COEFFICIENTS (c0 is the level, left out: gain is not identity).
_MEL_BANDS = librosa.filters.mel(sr=RATE, n_fft=FRAME_LENGTH, n_mels=20, fmin=300.0, fmax=3400.0)
ENVELOPE_COEFFICIENTS = 12


@dataclass(frozen=True, slots=True)
class WordTiming:
    """One recognised word, times in seconds from the start of the utterance (Vosk `result`)."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.start <= self.end:
            raise ValueError(f"word timing needs 0 <= start <= end, got {self.start}..{self.end}")


@dataclass(frozen=True, slots=True)
class ProsodyFeatures:
    """Prosody of one utterance. Pitch/loudness/rate are None when too little was voiced.

    Beyond level and spread: `f0_range_st` (10th to 90th percentile) and `f0_slope_st_per_s`
    (a least-squares line through the voiced pitch); `articulation_rate`, energy peaks per
    second of speech with the pauses left out; `mean_pause_s`, the mean internal pause of at
    least 100 ms (0 without one); `hnr_db`, the median harmonics-to-noise ratio of voiced
    frames; `spectral_tilt_db`, voiced energy below 1 kHz over 1-3.4 kHz with the line's noise
    subtracted (vocal effort flattens it, plain gain does not); `noise_floor_dbfs`, the 10th
    percentile of frame energies, which tells a line that turned noisy; `spectral_envelope`,
    mel-cepstral coefficients 1-12 of the mean voiced spectrum (noise subtracted), which tell
    one speaker from another (the tracker's speaker-change check).

    Pitch frames read at a harmonic or at twice the period are read back first (see
    `follow_pitch`).

    Spreads are interquartile ranges: robust to the odd octave error of a frame-wise tracker.
    `speaking_rate` is words per second of speech with ASR timings (`rate_source="asr_words"`),
    otherwise syllable-like energy peaks per voiced second (`"energy_peaks"`); the two are on
    different scales, so only compare rates from the same source.
    """

    duration_s: float
    voiced_s: float
    f0_median_st: float | None
    f0_spread_st: float | None
    energy_median_dbfs: float | None
    energy_spread_db: float | None
    speaking_rate: float | None
    rate_source: Literal["asr_words", "energy_peaks"]
    pause_ratio: float
    f0_range_st: float | None = None
    f0_slope_st_per_s: float | None = None
    articulation_rate: float | None = None
    mean_pause_s: float | None = None
    hnr_db: float | None = None
    spectral_tilt_db: float | None = None
    noise_floor_dbfs: float | None = None
    spectral_envelope: tuple[float, ...] | None = None

    @property
    def has_voice(self) -> bool:
        return self.f0_median_st is not None


def extract_features(
    pcm: np.ndarray, rate: int = RATE, words: list[WordTiming] | None = None
) -> ProsodyFeatures:
    """Prosody features of one utterance of mono int16 PCM (resampled to 8 kHz if needed)."""
    audio = _to_float_8k(pcm, rate)
    frames = librosa.util.frame(
        np.pad(audio, (0, max(0, FRAME_LENGTH - audio.size))),
        frame_length=FRAME_LENGTH,
        hop_length=HOP_LENGTH,
        axis=0,
    )
    energy_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + _EPSILON)
    active = (energy_db > energy_db.max() - _ACTIVE_RANGE_DB) & (energy_db > _ACTIVE_FLOOR_DBFS)
    f0 = librosa.yin(
        audio,
        fmin=FMIN_HZ,
        fmax=FMAX_HZ,
        sr=RATE,
        frame_length=FRAME_LENGTH,
        hop_length=HOP_LENGTH,
        center=False,
    )[: frames.shape[0]]
    periodicity = _periodicity(frames, f0)
    voiced = active & (periodicity >= _PERIODICITY_THRESHOLD)
    duration_s = audio.size / RATE
    voiced_s = float(voiced.sum()) * HOP_LENGTH / RATE
    pause_ratio = _pause_ratio(active)
    if words:
        rate_source: Literal["asr_words", "energy_peaks"] = "asr_words"
        speaking_rate: float | None = _words_per_second(words)
    else:
        rate_source = "energy_peaks"
        speaking_rate = None
    if voiced.sum() < MIN_VOICED_FRAMES:
        return ProsodyFeatures(
            duration_s, voiced_s, None, None, None, None, speaking_rate, rate_source, pause_ratio
        )
    semitones = follow_pitch(
        12.0 * np.log2(f0[voiced] / SEMITONE_REFERENCE_HZ), np.flatnonzero(voiced)
    )
    peaks = _energy_peaks(energy_db, voiced)
    if speaking_rate is None:
        speaking_rate = peaks / voiced_s
    times = np.flatnonzero(voiced) * HOP_LENGTH / RATE
    speech_spectrum = _voiced_spectrum(frames, voiced, active)
    return ProsodyFeatures(
        duration_s=duration_s,
        voiced_s=voiced_s,
        f0_median_st=float(np.median(semitones)),
        f0_spread_st=_iqr(semitones),
        energy_median_dbfs=float(np.median(energy_db[voiced])),
        energy_spread_db=_iqr(energy_db[voiced]),
        speaking_rate=speaking_rate,
        rate_source=rate_source,
        pause_ratio=pause_ratio,
        f0_range_st=float(np.subtract(*np.percentile(semitones, [90, 10]))),
        f0_slope_st_per_s=float(np.polyfit(times, semitones, 1)[0]),
        articulation_rate=peaks / (float(active.sum()) * HOP_LENGTH / RATE),
        mean_pause_s=_mean_pause_s(active),
        hnr_db=_hnr_db(periodicity[voiced]),
        spectral_tilt_db=_spectral_tilt_db(speech_spectrum),
        noise_floor_dbfs=float(np.percentile(energy_db, _NOISE_FLOOR_PERCENTILE)),
        spectral_envelope=_spectral_envelope(speech_spectrum),
    )


def _to_float_8k(pcm: np.ndarray, rate: int) -> np.ndarray:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError("pcm must be a one-dimensional int16 numpy array (mono PCM)")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < RATE:
        raise ValueError(f"rate must be an integer sample rate of at least {RATE} Hz, got {rate!r}")
    if pcm.size == 0:
        raise ValueError("pcm is empty: an utterance needs at least one sample")
    audio = pcm.astype(np.float32) / 32768.0
    return audio if rate == RATE else soxr.resample(audio, rate, RATE)


def _periodicity(frames: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Normalised correlation of each frame with itself one estimated period later."""
    periods = np.clip(np.round(RATE / f0).astype(np.intp), 1, FRAME_LENGTH // 2)
    window = FRAME_LENGTH // 2
    offsets = np.arange(window)
    rows = np.arange(frames.shape[0])[:, None]
    head = frames[rows, offsets[None, :]]
    lagged = frames[rows, offsets[None, :] + periods[:, None]]
    numerator = np.sum(head * lagged, axis=1)
    denominator = np.sqrt(np.sum(head**2, axis=1) * np.sum(lagged**2, axis=1)) + _EPSILON
    return numerator / denominator


def _pause_ratio(active: np.ndarray) -> float:
    """Share of silent frames between the first and the last active frame.

    Silence before and after speech is the endpointer's doing, not the speaker's, so it is left
    out.
    """
    indices = np.flatnonzero(active)
    if indices.size == 0:
        return 0.0
    span = active[indices[0] : indices[-1] + 1]
    return float(1.0 - span.mean())


def _mean_pause_s(active: np.ndarray) -> float:
    """Mean length of the silent runs between active frames that last at least 100 ms."""
    indices = np.flatnonzero(active)
    if indices.size == 0:
        return 0.0
    gaps = np.diff(indices) - 1
    pauses = gaps[gaps >= _MIN_PAUSE_FRAMES]
    return float(pauses.mean()) * HOP_LENGTH / RATE if pauses.size else 0.0


def _hnr_db(periodicity: np.ndarray) -> float:
    """Harmonics-to-noise ratio from the normalised self-correlation r: 10 log10(r / (1 - r))."""
    r = np.clip(periodicity, 0.01, 0.999)
    return float(np.median(10.0 * np.log10(r / (1.0 - r))))


def follow_pitch(semitones: np.ndarray, frame_index: np.ndarray) -> np.ndarray:
    """The voiced frames' pitch with harmonic and period-doubling errors read back.

    Each frame may be read as it is or by one of `_HARMONIC_RATIOS`; the cheapest path
    (Viterbi) prefers the tracker's own reading, readings near the utterance's centre (where
    most frames agree) and small steps between neighbouring frames, so a stretch locked on the
    3rd harmonic comes back as a whole while an ordinary melody of a few semitones is kept.
    `frame_index` gives each frame's position, to tell neighbours from frames across a pause.
    """
    readings = semitones[:, None] - _RATIO_OFFSETS_ST[None, :]
    others = np.arange(_HARMONIC_RATIOS.size) != 0
    local = _CENTRE_COST * np.abs(readings - _pitch_centre(readings)) + _RATIO_COST_ST * others
    cost = local[0]
    back = np.zeros(readings.shape, dtype=np.intp)
    neighbours = np.diff(frame_index) <= _MAX_JUMP_GAP_FRAMES
    for t in range(1, readings.shape[0]):
        if neighbours[t - 1]:
            total = cost[:, None] + _JUMP_COST * np.abs(
                readings[t][None, :] - readings[t - 1][:, None]
            )
            back[t] = np.argmin(total, axis=0)
            cost = np.min(total, axis=0) + local[t]
        else:
            back[t] = np.argmin(cost)
            cost = np.min(cost) + local[t]
    path = np.empty(readings.shape[0], dtype=np.intp)
    path[-1] = np.argmin(cost)
    for t in range(readings.shape[0] - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return readings[np.arange(readings.shape[0]), path]


def _pitch_centre(readings: np.ndarray) -> float:
    """The pitch most frames' readings agree on, within `_CENTRE_WIDTH_ST`."""
    votes = np.where(np.arange(readings.shape[1]) == 0, 1.0, _OTHER_RATIO_VOTE)
    grid = np.arange(readings.min(), readings.max() + _CENTRE_STEP_ST, _CENTRE_STEP_ST)
    near = np.abs(readings[None, :, :] - grid[:, None, None]) <= _CENTRE_WIDTH_ST
    return float(grid[np.argmax((near * votes).sum(axis=(1, 2)))])


def _voiced_spectrum(frames: np.ndarray, voiced: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Mean power spectrum of voiced frames less the noise floor (the mean spectrum of inactive
    frames): a noisy line must not look like a strained voice or another speaker."""
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    speech = power[voiced].mean(axis=0)
    quiet = power[~active]
    if quiet.shape[0] >= _MIN_NOISE_FRAMES:
        speech = np.maximum(speech - quiet.mean(axis=0), speech * _SPECTRAL_FLOOR)
    return speech


def _spectral_tilt_db(speech: np.ndarray) -> float:
    """Voiced energy in 300 Hz-1 kHz over 1-3.4 kHz, in dB."""
    return float(
        10.0
        * np.log10((speech[_LOW_BAND].sum() + _EPSILON) / (speech[_HIGH_BAND].sum() + _EPSILON))
    )


def _spectral_envelope(speech: np.ndarray) -> tuple[float, ...]:
    """Mel-cepstral coefficients 1..12 (dB) of the mean voiced spectrum."""
    log_bands = 10.0 * np.log10(_MEL_BANDS @ speech + _EPSILON)
    cepstrum = scipy.fft.dct(log_bands, type=2, norm="ortho")
    return tuple(float(c) for c in cepstrum[1 : ENVELOPE_COEFFICIENTS + 1])


def _energy_peaks(energy_db: np.ndarray, voiced: np.ndarray) -> int:
    """Count syllable-like peaks of the smoothed loudness envelope inside voiced stretches."""
    kernel = np.ones(_ENVELOPE_SMOOTHING_FRAMES) / _ENVELOPE_SMOOTHING_FRAMES
    envelope = np.convolve(np.where(voiced, energy_db, energy_db.min()), kernel, mode="same")
    peaks, _ = scipy.signal.find_peaks(
        envelope, prominence=_PEAK_PROMINENCE_DB, distance=_PEAK_MIN_DISTANCE_FRAMES
    )
    return int(voiced[peaks].sum())


def _words_per_second(words: list[WordTiming]) -> float:
    span = max(word.end for word in words) - min(word.start for word in words)
    if span <= 0:
        raise ValueError("word timings must span a positive time (end after start)")
    return len(words) / span


def _iqr(values: np.ndarray) -> float:
    q75, q25 = np.percentile(values, [75, 25])
    return float(q75 - q25)
