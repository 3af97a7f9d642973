"""Production language packs: the catalogue, install and verify (`outdial models`).

A plain install only has the packaged Korean Vosk model and the en_US "joe" voice (NOTES §3).
Operators install real packs from the publishers' release URLs; every download is checked
against a pinned SHA-256 before anything is unpacked, and a pack appears in the models
directory in one `rename` (built in a temporary directory beside it), so a failed or
interrupted install never leaves a half pack behind. Several packs install side by side,
one directory each; which one serves a script is `voice.packs.choose_pack`'s business.

A catalogue part may also be a local `path` (a mirror on disk, or a model already unpacked):
its files are hard-linked into the pack where the filesystem allows, so a second pack made
from the same files takes no second copy on disk. The installed layout is in voice/packs.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from rich.progress import Progress, TaskID

from langpacks.settings import ModelsSettings
from voice.packs import (
    MANIFEST,
    PackChooser,
    PackError,
    PackOffer,
    PackRequest,
    PackSpec,
    PackUnavailable,
    choose_pack,
    installed_pack,
    installed_packs,
    language_of,
    packaged_pack,
    read_manifest,
)
from voice.settings import AsrSettings, TtsSettings

if TYPE_CHECKING:
    from dialog import Script


class PackConfig(Protocol):
    """The parts of the daemon's configuration that choose packs (outdial.config.Config)."""

    models: ModelsSettings
    asr: AsrSettings
    tts: TtsSettings

    @property
    def models_dir(self) -> Path: ...


log = logging.getLogger(__name__)

PartName = Literal["vosk", "voice", "voice_config"]
PARTS: tuple[PartName, ...] = ("vosk", "voice", "voice_config")
_CHUNK = 1 << 16
# A zip bomb guard far above any Vosk model an operator would put on a PBX host.
MAX_UNPACKED_BYTES = 8 << 30
_ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")


class ModelsError(Exception):
    """A pack that cannot be installed or verified; the message says why (the CLI prints it
    as one line)."""


class Artifact(BaseModel):
    """One published file (`url`), or one on this host (`path`), and what it must hash to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    # A local file, or for `vosk` also an unpacked model directory (never pinned: its files are
    # hashed into pack.json at install and checked by `models verify` from then on).
    path: Path | None = None
    # None: the publisher gives no checksum we could pin; `install` then needs `--sha256`
    # (a local path needs none: it is the operator's own disk).
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(default=None, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path:
            raise ValueError(f"not an http(s) file URL: {value!r}")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"a local path must be absolute: {value}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Artifact:
        if (self.url is None) == (self.path is None):
            raise ValueError("give either `url` or `path`")
        return self

    @property
    def source(self) -> str:
        return self.url if self.url is not None else str(self.path)

    @property
    def filename(self) -> str:
        if self.path is not None:
            return self.path.name
        assert self.url is not None
        return PurePosixPath(urlsplit(self.url).path).name


class LanguagePack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The pack's name: a language code, optionally with a variant (en-gb).
    lang: str = Field(pattern=r"^[a-z]{2,3}(-[a-z0-9]+)?$")
    # The script language it serves (scripts' `language:`); default: the name before the dash.
    language: str = Field(default="", pattern=r"^([a-z]{2,3})?$")
    description: str
    vosk: Artifact
    voice: Artifact
    voice_config: Artifact

    @model_validator(mode="after")
    def _language_from_name(self) -> LanguagePack:
        if not self.language:
            object.__setattr__(self, "language", language_of(self.lang))
        return self

    def part(self, name: PartName) -> Artifact:
        artifact: Artifact = getattr(self, name)
        return artifact

    @property
    def voice_name(self) -> str:
        """The Piper voice as scripts name it in `voice:`."""
        return self.voice.filename.removesuffix(".onnx")

    @property
    def download_bytes(self) -> int | None:
        sizes = [self.part(p).size for p in PARTS]
        return None if None in sizes else sum(s for s in sizes if s is not None)


class _CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    packs: list[LanguagePack]


_PIPER = "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0"

# Sums and sizes as published for these exact files (alphacephei.com model zips, Hugging Face
# LFS objects of rhasspy/piper-voices at tag v1.0.0).
_EN_SMALL = Artifact(
    url="https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip",
    sha256="30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
    size=41_205_931,
)


def _piper(
    voice: str, model: tuple[str, int] | None = None, config: tuple[str, int] | None = None
) -> tuple[Artifact, Artifact]:
    """A Piper voice's model and config (`en/en_US/lessac/medium/en_US-lessac-medium`), with
    their SHA-256 and size where pinned."""

    def artifact(suffix: str, pinned: tuple[str, int] | None) -> Artifact:
        sha256, size = pinned or (None, None)
        return Artifact(url=f"{_PIPER}/{voice}{suffix}", sha256=sha256, size=size)

    return artifact(".onnx", model), artifact(".onnx.json", config)


_EN_VOICE, _EN_VOICE_CONFIG = _piper(
    "en/en_US/lessac/medium/en_US-lessac-medium",
    ("5efe09e69902187827af646e1a6e9d269dee769f9877d17b16b1b46eeaaf019f", 63_201_294),
    ("efe19c417bed055f2d69908248c6ba650fa135bc868b0e6abb3da181dab690a0", 4_885),
)
_ZH_VOICE, _ZH_VOICE_CONFIG = _piper(
    "zh/zh_CN/huayan/medium/zh_CN-huayan-medium",
    ("9929917bf8cabb26fd528ea44d3a6699c11e87317a14765312420be230be0f3d", 63_201_294),
    ("d521dc45504a8ccc99e325822b35946dd701840bfb07e3dbb31a40929ed6a82b", 4_822),
)
_GB_VOICE, _GB_VOICE_CONFIG = _piper("en/en_GB/alan/medium/en_GB-alan-medium")

BUILTIN_PACKS: tuple[LanguagePack, ...] = (
    LanguagePack(
        lang="en",
        description="US English: vosk-model-small-en-us-0.15 + Piper en_US-lessac-medium",
        vosk=_EN_SMALL,
        voice=_EN_VOICE,
        voice_config=_EN_VOICE_CONFIG,
    ),
    LanguagePack(
        lang="zh",
        description="Mandarin: vosk-model-small-cn-0.22 + Piper zh_CN-huayan-medium",
        vosk=Artifact(
            url="https://alphacephei.com/vosk/models/vosk-model-small-cn-0.22.zip",
            sha256="3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba",
            size=43_898_754,
        ),
        voice=_ZH_VOICE,
        voice_config=_ZH_VOICE_CONFIG,
    ),
    # Variants: published files whose checksums we could not pin from here (no network on the
    # build host), so `install` asks for `--sha256 PART=...` from the publisher's listing.
    LanguagePack(
        lang="en-in",
        description="Indian English: vosk-model-small-en-in-0.4 + Piper en_US-lessac-medium "
        "(Piper has no Indian English voice)",
        vosk=Artifact(url="https://alphacephei.com/vosk/models/vosk-model-small-en-in-0.4.zip"),
        voice=_EN_VOICE,
        voice_config=_EN_VOICE_CONFIG,
    ),
    LanguagePack(
        lang="en-gb",
        description="British English voice: vosk-model-small-en-us-0.15 (Vosk has no British "
        "model) + Piper en_GB-alan-medium",
        vosk=_EN_SMALL,
        voice=_GB_VOICE,
        voice_config=_GB_VOICE_CONFIG,
    ),
    LanguagePack(
        lang="zh-large",
        description="Mandarin, large model for servers: vosk-model-cn-0.22 (about 1.3 GB "
        "download, several GB of memory) + Piper zh_CN-huayan-medium",
        vosk=Artifact(url="https://alphacephei.com/vosk/models/vosk-model-cn-0.22.zip"),
        voice=_ZH_VOICE,
        voice_config=_ZH_VOICE_CONFIG,
    ),
)


# Dialects operators ask for that no pack can serve: neither the Vosk model list nor
# rhasspy/piper-voices v1.0.0 has a model for them (`outdial models list` says so).
WITHOUT_PACKS = (
    "Cantonese (yue): no Vosk model, no Piper voice",
    "Wu/Shanghainese (wuu), Min/Hokkien (nan): no Vosk model, no Piper voice",
    "Indian English voice: Vosk model yes (en-in), Piper voice no (en-in uses en_US)",
    "British English ASR: Piper voices yes (en-gb), Vosk model no (en-gb uses en-us)",
)


def load_catalogue(extra: Path | None = None) -> dict[str, LanguagePack]:
    """The built-in packs, with the packs of `extra` (YAML `packs: [...]`) added or replacing."""
    packs = {p.lang: p for p in BUILTIN_PACKS}
    if extra is None:
        return packs
    try:
        data = yaml.safe_load(extra.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelsError(f"{extra}: cannot read the pack catalogue ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ModelsError(f"{extra}: not valid YAML ({exc})") from exc
    try:
        parsed = _CatalogueFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ModelsError(f"{extra}: {where}: {first['msg']}") from exc
    packs.update({p.lang: p for p in parsed.packs})
    return packs


# --- installed packs, and which one serves a script -----------------------------------------


def pack_offers(catalogue: Mapping[str, LanguagePack]) -> list[PackOffer]:
    """What `outdial models install` could add, as refusals name it."""
    return [PackOffer(p.lang, p.language, p.voice_name) for p in catalogue.values()]


def available_packs(config: PackConfig) -> list[PackSpec]:
    """The installed packs, and the models packaged with outdial (or `asr`/`tts` model_path)."""
    return [*installed_packs(config.models_dir), packaged_pack(config.asr, config.tts)]


def pack_chooser(config: PackConfig) -> PackChooser:
    """`choose_pack` over the packs installed at the time of asking: a pack installed while
    the daemon runs serves its scripts from the next reload (SIGHUP)."""
    offers = pack_offers(load_catalogue(config.models.catalogue))

    def choose(request: PackRequest) -> PackSpec:
        return choose_pack(request, available_packs(config), offers)

    return choose


@dataclass(frozen=True)
class PackPlan:
    """Which pack serves each script, and why the others cannot be served (one line each)."""

    served: dict[str, PackSpec]  # by script name
    refused: dict[str, str]

    @property
    def packs(self) -> list[PackSpec]:
        """The packs the scripts need, each once."""
        return list({spec.name: spec for spec in self.served.values()}.values())


def plan_packs(config: PackConfig, scripts: Iterable[Script]) -> PackPlan:
    """The pack of every script, as the daemon will choose it (ModelsError: a broken
    catalogue)."""
    choose = pack_chooser(config)
    plan = PackPlan({}, {})
    for script in scripts:
        try:
            plan.served[script.name] = choose(PackRequest.of(script))
        except PackUnavailable as exc:
            plan.refused[script.name] = str(exc)
    return plan


# --- install ---------------------------------------------------------------------------------


def resolve_sums(pack: LanguagePack, given: Mapping[str, str]) -> dict[PartName, str]:
    """The SHA-256 each part must have: pinned in the catalogue, or given by the operator.

    A pinned sum is never overridden: a different one on the command line is refused.
    """
    unknown = set(given) - set(PARTS)
    if unknown:
        raise ModelsError(
            f"--sha256 names unknown part(s) {', '.join(sorted(unknown))}; "
            f"parts are {', '.join(PARTS)}"
        )
    sums: dict[PartName, str] = {}  # a local part without a pinned sum has none to check
    for name in PARTS:
        artifact = pack.part(name)
        offered = given.get(name, "").strip().lower() or None
        if offered is not None and len(offered) != 64:
            raise ModelsError(f"--sha256 {name}=...: expected 64 hex digits")
        if artifact.sha256 is not None:
            if offered is not None and offered != artifact.sha256:
                raise ModelsError(
                    f"{name} of pack {pack.lang!r} has a pinned SHA-256 ({artifact.sha256}); "
                    "refusing a different one from the command line"
                )
            sums[name] = artifact.sha256
        elif offered is not None:
            sums[name] = offered
        elif artifact.path is None:
            raise ModelsError(
                f"no pinned SHA-256 for {artifact.url}: check the publisher's checksum and "
                f"pass it with --sha256 {name}=<64 hex digits>"
            )
    return sums


async def install_pack(
    pack: LanguagePack,
    models_dir: Path,
    *,
    sums: Mapping[str, str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
) -> PackSpec:
    """Download (or read from disk), verify, unpack and move the pack into place; nothing is
    left on failure."""
    expected = resolve_sums(pack, sums or {})
    target = models_dir / pack.lang
    work = await asyncio.to_thread(_work_dir, target, force)
    try:
        downloads = work / "downloads"
        downloads.mkdir()
        files: dict[PartName, Path] = {}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for name in PARTS:
                artifact = pack.part(name)
                if artifact.path is not None:
                    files[name] = await asyncio.to_thread(_local_part, artifact, expected.get(name))
                    continue
                dest = downloads / f"{name}-{artifact.filename}"
                await _download(session, artifact, expected[name], dest, progress)
                files[name] = dest
        staged = work / "pack"
        await asyncio.to_thread(_assemble, pack, files, expected, staged)
        await asyncio.to_thread(_move_into_place, staged, target)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    log.info("language pack %s installed in %s", pack.lang, target)
    try:
        return installed_pack(models_dir, pack.lang)
    except PackError as exc:
        raise ModelsError(str(exc)) from exc


def _local_part(artifact: Artifact, sha256: str | None) -> Path:
    """A part on this host, checked against its sum when the catalogue pins one."""
    path = artifact.path
    assert path is not None
    if not path.exists():
        raise ModelsError(f"{path}: no such file or directory (catalogue `path`)")
    if sha256 is not None:
        if not path.is_file():
            raise ModelsError(f"{path}: a pinned sha256 needs a file, not a directory")
        if (got := _hash_file(path)) != sha256:
            raise ModelsError(
                f"{path}: SHA-256 mismatch (expected {sha256}, got {got}); nothing was installed"
            )
    return path


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the filesystem allows (a second pack of the same files takes no
    second copy on disk), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _work_dir(target: Path, force: bool) -> Path:
    """A fresh directory beside the target, so the final rename stays on one filesystem."""
    if target.exists() and not force:
        raise ModelsError(f"{target} already exists; use --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".install-{target.name}-", dir=target.parent))


async def _download(
    session: aiohttp.ClientSession,
    artifact: Artifact,
    sha256: str,
    dest: Path,
    progress: Progress | None,
) -> None:
    digest = hashlib.sha256()
    received = 0
    task: TaskID | None = None
    try:
        async with session.get(artifact.url) as response:
            if response.status != 200:
                raise ModelsError(f"{artifact.url}: HTTP {response.status} {response.reason}")
            total = response.content_length or artifact.size
            if progress is not None:
                task = progress.add_task(artifact.filename, total=total)
            with dest.open("wb") as out:
                async for chunk in response.content.iter_chunked(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if progress is not None and task is not None:
                        progress.advance(task, len(chunk))
    except aiohttp.ClientPayloadError as exc:
        raise ModelsError(
            f"{artifact.url}: download interrupted after {received} bytes ({exc})"
        ) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ModelsError(f"{artifact.url}: download failed ({exc or type(exc).__name__})") from exc
    if artifact.size is not None and received != artifact.size:
        raise ModelsError(
            f"{artifact.url}: got {received} bytes, the published file has {artifact.size}"
        )
    if digest.hexdigest() != sha256:
        raise ModelsError(
            f"{artifact.url}: SHA-256 mismatch (expected {sha256}, got {digest.hexdigest()}); "
            "nothing was installed"
        )


def _assemble(
    pack: LanguagePack, files: Mapping[PartName, Path], sums: Mapping[PartName, str], staged: Path
) -> None:
    """Build the pack directory from verified downloads (runs in a thread)."""
    staged.mkdir()
    if files["vosk"].is_dir():  # a model already unpacked on this host
        check_vosk_layout(files["vosk"])
        shutil.copytree(files["vosk"], staged / "vosk", copy_function=_link_or_copy)
    else:
        unpacked = staged.parent / "unpacked"
        unpacked.mkdir()
        extract_archive(files["vosk"], unpacked)
        model_root = _single_root(unpacked)
        check_vosk_layout(model_root)
        model_root.rename(staged / "vosk")
    piper = staged / "piper"
    piper.mkdir()
    voice = piper / pack.voice.filename
    voice_config = piper / pack.voice_config.filename
    for part, dest in (("voice", voice), ("voice_config", voice_config)):
        if pack.part(part).path is not None:  # the operator's own file: never moved away
            _link_or_copy(str(files[part]), str(dest))
        else:
            shutil.move(files[part], dest)
    check_voice_config(voice_config)
    manifest = {
        "lang": pack.lang,
        "language": pack.language,
        "description": pack.description,
        "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sources": {n: _source_record(pack.part(n), sums.get(n)) for n in PARTS},
        "voice_file": voice.name,
        "voice_config_file": voice_config.name,
        "files": _hash_tree(staged),
    }
    (staged / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _source_record(artifact: Artifact, sha256: str | None) -> dict[str, str | None]:
    where = {"url": artifact.url} if artifact.path is None else {"path": str(artifact.path)}
    return {**where, "sha256": sha256}


def _move_into_place(staged: Path, target: Path) -> None:
    """One rename makes the pack visible; an old pack is swapped out, then deleted."""
    if not target.exists():
        staged.rename(target)
        return
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    target.rename(old)
    staged.rename(target)
    shutil.rmtree(old, ignore_errors=True)


# --- archives --------------------------------------------------------------------------------


def extract_archive(archive: Path, dest: Path) -> None:
    """Unpack a zip or tar archive into `dest`, refusing members that would land outside it."""
    name = archive.name.lower()
    if not name.endswith(_ARCHIVE_SUFFIXES):
        raise ModelsError(f"{archive.name}: not a zip or tar archive")
    try:
        if name.endswith(".zip"):
            _extract_zip(archive, dest)
        else:
            _extract_tar(archive, dest)
    except (zipfile.BadZipFile, tarfile.ReadError, EOFError) as exc:
        raise ModelsError(f"{archive.name}: corrupt archive ({exc})") from exc


def _safe_member_path(dest: Path, member: str) -> Path:
    pure = PurePosixPath(member.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise ModelsError(f"archive member {member!r} points outside the pack; refusing it")
    return dest.joinpath(*pure.parts)


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
            raise ModelsError(f"{archive.name}: unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        for info in infos:
            path = _safe_member_path(dest, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ModelsError(f"archive member {info.filename!r} is a symbolic link")
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, path.open("wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        if sum(m.size for m in members) > MAX_UNPACKED_BYTES:
            raise ModelsError(f"{archive.name}: unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        for member in members:
            _safe_member_path(dest, member.name)
            if not (member.isfile() or member.isdir()):
                raise ModelsError(f"archive member {member.name!r} is not a plain file")
        # The "data" filter re-checks every member (Python's own guard against traversal).
        try:
            tf.extractall(dest, filter="data")
        except tarfile.FilterError as exc:
            raise ModelsError(f"{archive.name}: unsafe member refused ({exc})") from exc


def _single_root(unpacked: Path) -> Path:
    """Model archives hold one top directory (vosk-model-...); use it as the model root."""
    entries = list(unpacked.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return unpacked


def check_vosk_layout(model_dir: Path) -> None:
    for required in ("am/final.mdl", "conf/model.conf"):
        if not (model_dir / required).is_file():
            raise ModelsError(f"not a Vosk model: {required} missing in {model_dir.name}")


def check_voice_config(path: Path) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rate = data["audio"]["sample_rate"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelsError(f"{path.name}: not a Piper voice config ({exc})") from exc
    if not isinstance(rate, int) or rate <= 0:
        raise ModelsError(f"{path.name}: audio.sample_rate must be a positive integer")


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): _hash_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


# --- verify ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackReport:
    lang: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def load_vosk(model_dir: Path) -> None:
    """Open the model the way the daemon does; raises ModelsError if Vosk cannot."""
    import vosk

    check_vosk_layout(model_dir)
    vosk.SetLogLevel(-1)
    try:
        vosk.Model(str(model_dir))
    except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
        raise ModelsError(f"Vosk cannot load {model_dir}: {exc}") from exc


def load_piper(model: Path, config: Path) -> None:
    """Open the voice the way the daemon does; raises ModelsError if Piper cannot."""
    from piper import PiperVoice

    for path in (model, config):
        if not path.is_file():
            raise ModelsError(f"Piper voice file missing: {path}")
    try:
        PiperVoice.load(model, config_path=config)
    except Exception as exc:  # onnxruntime and json raise many unrelated types
        raise ModelsError(f"Piper cannot load {model}: {exc}") from exc


def _verify_sync(models_dir: Path, lang: str, load: bool) -> PackReport:
    root = models_dir / lang
    try:
        paths = installed_pack(models_dir, lang)
        manifest = read_manifest(root)
    except PackError as exc:
        return PackReport(lang, (str(exc),))
    problems: list[str] = []
    for rel, sha in manifest["files"].items():
        path = root / rel
        if not path.is_file():
            problems.append(f"missing file {rel}")
        elif _hash_file(path) != sha:
            problems.append(f"changed since install: {rel}")
    if load and not problems:
        for opener in (
            lambda: load_vosk(paths.vosk_dir),
            lambda: load_piper(paths.voice_model, paths.voice_config),
        ):
            try:
                opener()
            except ModelsError as exc:
                problems.append(str(exc))
    return PackReport(lang, tuple(problems))


async def verify_pack(models_dir: Path, lang: str, *, load: bool = True) -> PackReport:
    """Re-hash every installed file against pack.json, then open the model and the voice."""
    return await asyncio.to_thread(_verify_sync, models_dir, lang, load)
