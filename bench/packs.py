"""Memory per language pack: what loading one pack adds to the daemon's resident memory.

Loads the packs the way the daemon does (`voice.packs.VoicePack.load`: Vosk model, Piper voice,
the recognizers built before READY), one after another in one process, and prints each
pack's growth of RSS; then builds each pack's full recognizer pool (`--recognizers`, the
daemon's default is `session.max_calls`) and prints the growth again. Recognizers grow
further once they have decoded audio (about 28 MB each after 3.5 s: NOTES §3), so a busy
pack takes more than this.

Without `--models-dir` it measures the packs that install here: the packaged one (Korean
Vosk + joe voice). With it, every pack installed there.

    .venv/bin/python bench/packs.py [--models-dir DIR] [--recognizers 40] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voice.packs import (  # noqa: E402
    PREWARM_LIMIT,
    PackSpec,
    VoicePack,
    installed_packs,
    packaged_pack,
    rss_bytes,
)
from voice.settings import AsrSettings, TtsSettings  # noqa: E402


def _mb(size: int | None) -> float | None:
    return None if size is None else round(size / 1e6, 1)


async def measure(specs: list[PackSpec], recognizers: int) -> dict[str, object]:
    results: dict[str, object] = {"rss_start_mb": _mb(rss_bytes()), "packs": []}
    with tempfile.TemporaryDirectory() as cache:
        tts = TtsSettings(cache_dir=Path(cache))
        for spec in specs:
            pack = await VoicePack.load(
                spec, AsrSettings(), tts, prewarm=min(recognizers, PREWARM_LIMIT)
            )
            before = rss_bytes()
            await pack.asr.fill_pool(recognizers)
            after = rss_bytes()
            pool = None if before is None or after is None else after - before
            row = {
                "pack": spec.name,
                "language": spec.language,
                "asr": spec.asr_name,
                "voice": spec.voice_name,
                "loaded_mb": _mb(pack.memory_bytes),
                "full_pool_mb": _mb(pool),
                "recognizers": pack.asr.recognizers_created,
            }
            results["packs"].append(row)  # type: ignore[attr-defined]
            print(
                f"{spec.name:>10} ({spec.language}): {row['loaded_mb']} MB loaded "
                f"({spec.asr_name} + {spec.voice_name}, {min(recognizers, PREWARM_LIMIT)} "
                f"recognizers), +{row['full_pool_mb']} MB for {recognizers} recognizers"
            )
            pack.shutdown()
    results["rss_end_mb"] = _mb(rss_bytes())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, help="measure the packs installed here")
    parser.add_argument("--recognizers", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.models_dir is not None:
        specs = installed_packs(args.models_dir)
    else:
        specs = [packaged_pack(AsrSettings(), TtsSettings())]
    results = asyncio.run(measure(specs, args.recognizers))
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
