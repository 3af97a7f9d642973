"""The scripts a daemon serves: loaded from a directory, versioned in PostgreSQL, hot-reloaded.

What is served is each script's live version in PostgreSQL (store/scripts.py): new file
content goes live when loaded, as before; a version staged and promoted by an admin, or a
rollback, goes live at the next reload. A reload (SIGHUP or a file change) prepares the new
version fully (classifier trained, static
prompts rendered) before swapping it in: new calls get it, live calls keep the runtime object
they started with. A script that fails validation keeps its previous version and is logged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import asyncpg

from agi.runtime import CallServices, ScriptRuntime, prepare_loaded, prepare_script
from dialog import ScriptError, parse_script
from dialog.directory import did_you_mean
from dialog.validate import content_hash
from store.scripts import LiveVersion, live_versions, record_script_version
from voice.packs import PackUnavailable

log = logging.getLogger(__name__)


class ScriptCatalog:
    def __init__(
        self, directory: Path, services: CallServices, cache_dir: Path, pool: asyncpg.Pool
    ) -> None:
        self.directory = directory
        self.services = services
        self.cache_dir = cache_dir
        self.pool = pool
        self._current: dict[str, ScriptRuntime] = {}
        self._hashes: dict[Path, str] = {}
        self.errors: dict[Path, str] = {}
        # Scripts that validate but whose language pack is not installed: the one-line reason.
        self.unservable: dict[str, str] = {}

    def get(self, name: str) -> ScriptRuntime | None:
        return self._current.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._current)

    def why_not(self, name: str) -> str:
        """Why the script `name` cannot be served, in one sentence (for logs and campaigns)."""
        if not self.directory.is_dir():
            return f"script {name!r}: the scripts directory {self.directory} does not exist"
        if name in self.unservable:
            return self.unservable[name]
        text = (
            f"script {name!r} is not loaded from {self.directory} "
            f"(loaded: {', '.join(self.names) or 'none'})"
        )
        if hint := did_you_mean(name, self.names):
            text += f"; {hint}"
        if self.errors:
            text += f"; {len(self.errors)} file(s) there do not validate (see the log)"
        return text

    async def reload(self) -> list[ScriptRuntime]:
        """(Re)load every changed `*.yaml` in the directory, then serve each script's live
        version (promoted or rolled back meanwhile); returns the versions newly served."""
        from_files: dict[tuple[str, int], ScriptRuntime] = {}
        for path in sorted(self.directory.glob("*.yaml")):
            runtime = await self._load_changed(path)
            if runtime is not None:
                from_files[runtime.name, runtime.version] = runtime
        served = []
        for live in await live_versions(self.pool):
            runtime = await self._serve_live(live, from_files.get((live.name, live.version)))
            if runtime is not None:
                served.append(runtime)
        return served

    async def _serve_live(
        self, live: LiveVersion, prepared: ScriptRuntime | None
    ) -> ScriptRuntime | None:
        """Serve the live version if it is not served yet: the runtime just prepared from its
        file, or one prepared from the stored source."""
        current = self._current.get(live.name)
        if current is not None and current.version == live.version:
            return None
        if prepared is None:
            where = f"{live.name} version {live.version} (stored)"
            try:
                loaded = parse_script(live.source, where)
            except ScriptError as exc:  # valid when stored; the validator may have grown
                log.error("script %s not served: %s", where, exc)
                return None
            try:
                prepared = await prepare_loaded(loaded, self.services, self.cache_dir, live.version)
            except PackUnavailable as exc:
                self.unservable[live.name] = str(exc)
                log.error("script %s not served: %s", where, exc)
                return None
        self._current[live.name] = prepared
        log.info("script %s version %d live", live.name, live.version)
        return prepared

    async def _load_changed(self, path: Path) -> ScriptRuntime | None:
        try:
            source = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._fail(path, f"cannot read: {exc}")
            return None
        if self._hashes.get(path) == content_hash(source):
            return None
        try:
            runtime = await prepare_script(path, self.services, self.cache_dir, version=0)
        except ScriptError as exc:
            self._fail(path, "; ".join(str(issue) for issue in exc.issues))
            return None
        except PackUnavailable as exc:
            # It keeps a version it already serves (a reload that names a pack not installed).
            self.unservable[exc.request.script] = str(exc)
            self._fail(path, str(exc))
            return None
        version = await record_script_version(
            self.pool,
            runtime.name,
            source,
            runtime.loaded.content_hash,
            str(path),
            runtime.script.required_fields(),
            edited=path in self._hashes,
        )
        runtime = replace(runtime, version=version)
        self._hashes[path] = runtime.loaded.content_hash
        self.errors.pop(path, None)
        self.unservable.pop(runtime.name, None)
        log.info("script %s version %d ready (pack %s)", runtime.name, version, runtime.pack.name)
        return runtime

    def _fail(self, path: Path, message: str) -> None:
        self.errors[path] = message
        log.error("script %s not loaded: %s", path, message)
