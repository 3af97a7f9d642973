"""The scripts a daemon serves: loaded from a directory, versioned in PostgreSQL, hot-reloaded.

A reload (SIGHUP or a file change) prepares the new version fully (classifier trained, static
prompts rendered) before swapping it in: new calls get it, live calls keep the runtime object
they started with. A script that fails validation keeps its previous version and is logged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import asyncpg

from agi.runtime import CallServices, ScriptRuntime, prepare_script
from dialog import ScriptError
from dialog.directory import did_you_mean
from dialog.validate import content_hash
from store.scripts import record_script_version
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
        """(Re)load every changed `*.yaml` in the directory; returns the new versions."""
        loaded: list[ScriptRuntime] = []
        for path in sorted(self.directory.glob("*.yaml")):
            runtime = await self._load_changed(path)
            if runtime is not None:
                loaded.append(runtime)
        return loaded

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
        )
        runtime = replace(runtime, version=version)
        self._hashes[path] = runtime.loaded.content_hash
        self._current[runtime.name] = runtime
        self.errors.pop(path, None)
        self.unservable.pop(runtime.name, None)
        log.info("script %s version %d ready (pack %s)", runtime.name, version, runtime.pack.name)
        return runtime

    def _fail(self, path: Path, message: str) -> None:
        self.errors[path] = message
        log.error("script %s not loaded: %s", path, message)
