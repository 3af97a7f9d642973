"""Local stand-ins for the model publishers: small archives and an aiohttp file server."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from langpacks.install import Artifact, LanguagePack

VOICE_CONFIG = json.dumps({"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"}}).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def vosk_zip(root: str = "vosk-model-small-xx-0.1", extra: dict[str, bytes] | None = None) -> bytes:
    """A zip shaped like a Vosk release: one top directory with am/ and conf/."""
    members = {
        f"{root}/am/final.mdl": b"acoustic model bytes " * 50,
        f"{root}/conf/model.conf": b"--min-active=200\n",
        f"{root}/graph/HCLr.fst": bytes(range(256)) * 8,
        **(extra or {}),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_gz(members: list[tarfile.TarInfo], payloads: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info in members:
            data = payloads.get(info.name)
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@dataclass
class FileServer:
    """Serves `files` by path; `truncate` paths send half the body then drop the connection."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncate: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    base_url: str = ""

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def artifact(self, path: str, data: bytes, *, pin: bool = True) -> Artifact:
        self.files[path] = data
        return Artifact(url=self.url(path), sha256=sha256(data) if pin else None, size=len(data))

    def pack(
        self,
        lang: str = "xx",
        *,
        vosk: bytes | None = None,
        vosk_name: str = "model.zip",
        voice: bytes = b"onnx weights " * 1000,
        pin: bool = True,
    ) -> LanguagePack:
        return LanguagePack(
            lang=lang,
            description=f"test pack {lang}",
            vosk=self.artifact(
                f"{lang}/{vosk_name}", vosk if vosk is not None else vosk_zip(), pin=pin
            ),
            voice=self.artifact(f"{lang}/voice.onnx", voice, pin=pin),
            voice_config=self.artifact(f"{lang}/voice.onnx.json", VOICE_CONFIG, pin=pin),
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.requests.append(path)
        data = self.files.get(path)
        if data is None:
            raise web.HTTPNotFound()
        if path not in self.truncate:
            return web.Response(body=data)
        response = web.StreamResponse()
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        assert request.transport is not None
        request.transport.close()  # the publisher's server went away mid-body
        return response


@asynccontextmanager
async def file_server() -> AsyncIterator[FileServer]:
    server = FileServer()
    app = web.Application()
    app.router.add_get("/{path:.+}", server._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def write_catalogue(path: Path, *packs: LanguagePack) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"packs": [p.model_dump() for p in packs]}), encoding="utf-8")
    return path
