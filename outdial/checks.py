"""`outdial check`: every dependency the daemon needs, one verdict line each.

Checks never raise: a diagnostic tool that crashes on the broken thing it should report is
useless, so each one turns any failure into a FAIL line with the reason.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import socket
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.campaigns import Campaign, PauseReason, list_campaigns, paused_for
from dialer.settings import TrunkSettings
from dialog.directory import ScriptDirectory, scan_scripts
from langpacks.install import ModelsError, PackPlan, load_piper, load_vosk, plan_packs
from outdial.config import Config
from store.db import Database, server_clock
from store.migrate import applied_if_any, available_migrations
from store.settings import DatabaseSettings
from voice.packs import PackSpec, packaged_pack

# Zones our callers live in, with a UTC offset each must give on a fixed winter/summer date.
ZONE_PROBES: tuple[tuple[str, datetime, timedelta], ...] = (
    ("America/New_York", datetime(2025, 1, 15, 12), timedelta(hours=-5)),
    ("America/New_York", datetime(2025, 7, 15, 12), timedelta(hours=-4)),
    ("Asia/Shanghai", datetime(2025, 7, 15, 12), timedelta(hours=8)),
    ("Europe/London", datetime(2025, 7, 15, 12), timedelta(hours=1)),
)
# No clock that reads earlier than this release is right.
CLOCK_FLOOR = datetime(2025, 1, 1, tzinfo=UTC)
MAX_DB_CLOCK_SKEW = timedelta(seconds=5)
AMI_ACTION_ID = "outdial-check"
# The secrets file deploy/systemd installs beside the config file.
CREDENTIALS_FILE = "outdial.env"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    # Works, but risky: the line says WARN (a failure under --strict).
    warning: bool = False

    @property
    def line(self) -> str:
        verdict = "FAIL" if not self.ok else "WARN" if self.warning else "OK"
        return f"{verdict:<4} {self.name}: {self.detail}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- database ---------------------------------------------------------------------------------


def describe_database(settings: DatabaseSettings, state_dir: Path) -> str:
    """Where the database is, without the password."""
    if settings.url is None:
        return f"embedded PostgreSQL in {state_dir / 'pgdata'}"
    parts = urlsplit(settings.url.get_secret_value())
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed port: the connection attempt reports it
        port = ""
    return f"{parts.hostname or 'localhost'}{port}{parts.path or ''}"


@dataclass(frozen=True)
class DatabaseCheck:
    result: CheckResult
    # Our clock minus PostgreSQL's, measured at the query (None: no database reached).
    clock_skew: timedelta | None


async def check_database(settings: DatabaseSettings, state_dir: Path) -> DatabaseCheck:
    where = describe_database(settings, state_dir)
    try:
        db = await asyncio.wait_for(
            Database.open(settings, state_dir, run_migrations=False),
            settings.connect_timeout_s + 5,
        )
    except Exception as exc:  # any failure to connect is the finding itself
        return DatabaseCheck(CheckResult("database", False, f"{where}: {_reason(exc)}"), None)
    try:
        async with db.pool.acquire() as conn:
            done = await applied_if_any(conn)
            before = datetime.now(UTC)
            server_time = await server_clock(conn)
            # The server read its clock somewhere during the round trip: compare with the middle.
            skew = before + (datetime.now(UTC) - before) / 2 - server_time
    except Exception as exc:  # e.g. permissions on schema_migrations
        return DatabaseCheck(CheckResult("database", False, f"{where}: {_reason(exc)}"), None)
    finally:
        await db.close()
    ok, detail = _schema_verdict(done)
    return DatabaseCheck(CheckResult("database", ok, detail), skew)


def _schema_verdict(done: dict[int, str]) -> tuple[bool, str]:
    known = available_migrations()
    pending = [f"{m.version:03d}_{m.name}" for m in known if m.version not in done]
    changed = [
        f"{m.version:03d}_{m.name}" for m in known if done.get(m.version, m.checksum) != m.checksum
    ]
    unknown = sorted(set(done) - {m.version for m in known})
    if changed:
        return False, f"applied migrations differ from this version's files: {', '.join(changed)}"
    if unknown:
        return False, (
            f"the database has migrations this outdial does not know ({unknown}); "
            "is a newer version running against it?"
        )
    if pending:
        return False, (
            f"{len(pending)} pending migration(s): {', '.join(pending)}; run `outdial db migrate`"
        )
    return True, f"reachable, schema up to date ({len(known)} migrations)"


# --- models -----------------------------------------------------------------------------------


def _voice_identity(voice_config: Path) -> tuple[str, str]:
    """`en_US-lessac-medium` and `en_US` from the voice's Piper config."""
    try:
        data = json.loads(voice_config.read_text(encoding="utf-8"))
        code = str(data["language"]["code"])
        quality = data.get("audio", {}).get("quality")
        name = "-".join(str(p) for p in (code, data.get("dataset"), quality) if p)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return voice_config.name.removesuffix(".json"), "?"
    return name, code


async def check_packs(config: Config) -> tuple[ScriptDirectory, PackPlan, list[CheckResult]]:
    """The scripts, the pack each needs, and whether those packs load."""
    directory = await asyncio.to_thread(scan_scripts, config.scripts_path)
    scripts = [loaded.script for loaded in directory.scripts.values()]
    try:
        plan = await asyncio.to_thread(plan_packs, config, scripts)
    except ModelsError as exc:  # the catalogue file: no pack can be named without it
        refused = PackPlan({}, {name: str(exc) for name in directory.scripts})
        return directory, refused, [CheckResult("models", False, str(exc))]
    return directory, plan, await check_models(config, plan)


def checked_packs(config: Config, plan: PackPlan) -> list[PackSpec]:
    """The packs the scripts need; the packaged models when no script needs any."""
    return plan.packs or [packaged_pack(config.asr, config.tts)]


async def check_models(config: Config, plan: PackPlan) -> list[CheckResult]:
    """Each pack the daemon will load, opened as it will open it: `vosk[pack]`, `piper[pack]`."""
    results = []
    for spec in checked_packs(config, plan):
        voice_name, voice_language = _voice_identity(spec.voice_config)
        asr = f"ASR model {spec.asr_name}, language {spec.asr_language}"
        voice = f"voice {voice_name}, language {voice_language}"
        for part, opener, what, where in (
            ("vosk", partial(load_vosk, spec.vosk_dir), asr, spec.vosk_dir),
            ("piper", partial(load_piper, spec.voice_model, spec.voice_config), voice,
             spec.voice_model),
        ):  # fmt: skip
            name = f"{part}[{spec.name}]"
            try:
                await asyncio.to_thread(opener)
            except ModelsError as exc:
                results.append(CheckResult(name, False, f"{what}: {exc}"))
            else:
                results.append(CheckResult(name, True, f"{what}: {where} loads"))
    return results


# --- AMI --------------------------------------------------------------------------------------


class AmiCheckError(Exception):
    pass


def _parse_message(raw: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


async def ami_login(host: str, port: int, username: str, secret: str) -> str:
    """Log in and off once; returns the banner. Raises AmiCheckError with the reason."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise AmiCheckError(f"cannot connect: {exc.strerror or exc}") from exc
    try:
        banner = (await reader.readline()).decode("utf-8", "replace").strip()
        if not banner.startswith("Asterisk Call Manager"):
            raise AmiCheckError(f"not an AMI server (it said {banner[:60]!r})")
        writer.write(
            (
                f"Action: Login\r\nActionID: {AMI_ACTION_ID}\r\nUsername: {username}\r\n"
                f"Secret: {secret}\r\nEvents: off\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        while True:
            try:
                reply = _parse_message(await reader.readuntil(b"\r\n\r\n"))
            except asyncio.IncompleteReadError as exc:
                raise AmiCheckError("the PBX closed the connection during login") from exc
            if reply.get("actionid") == AMI_ACTION_ID or "response" in reply:
                break  # events before the reply are skipped
        if reply.get("response", "").lower() != "success":
            raise AmiCheckError(f"login refused: {reply.get('message', 'no reason given')}")
        writer.write(b"Action: Logoff\r\nActionID: outdial-check-bye\r\n\r\n")
        await writer.drain()
        return banner
    finally:
        writer.close()


async def check_ami(trunk: TrunkSettings, timeout_s: float) -> CheckResult:
    name = f"ami[{trunk.name}]"
    where = f"{trunk.username}@{trunk.host}:{trunk.port}"
    secret = trunk.secret.get_secret_value()
    if not secret:
        env = f"OUTDIAL_AMI_SECRET_{trunk.name.upper()}"
        return CheckResult(name, False, f"{where}: no secret set ({env} or OUTDIAL_AMI_SECRET)")
    try:
        banner = await asyncio.wait_for(
            ami_login(trunk.host, trunk.port, trunk.username, secret), timeout_s
        )
    except AmiCheckError as exc:
        return CheckResult(name, False, f"{where}: {exc}")
    except TimeoutError:
        return CheckResult(name, False, f"{where}: no answer within {timeout_s:g} s")
    except OSError as exc:
        return CheckResult(name, False, f"{where}: {_reason(exc)}")
    return CheckResult(name, True, f"{where}: logged in ({banner})")


# --- scripts ----------------------------------------------------------------------------------


async def _campaigns_needing_scripts(config: Config) -> list[Campaign]:
    """Active campaigns, and those the daemon paused because it could not serve their script."""
    db = await Database.open(config.database, config.state_dir, run_migrations=False)
    try:
        async with db.pool.acquire() as conn:
            active = await list_campaigns(conn, active_only=True)
            return active + await paused_for(conn, PauseReason.SCRIPT_UNAVAILABLE)
    finally:
        await db.close()


def _scripts_verdict(directory: ScriptDirectory, campaigns: list[Campaign]) -> CheckResult:
    if directory.missing:
        return CheckResult(
            "scripts", True, f"{directory.path} does not exist; no campaign needs it"
        )
    names = ", ".join(sorted(directory.scripts)) or "none"
    return CheckResult(
        "scripts",
        not directory.errors,
        f"{len(directory.scripts)} in {directory.path} ({names}); "
        f"{len(campaigns)} campaign(s) need one, all there",
    )


async def check_scripts(
    config: Config, database_ok: bool, directory: ScriptDirectory, plan: PackPlan
) -> list[CheckResult]:
    """The daemon serves a campaign only if its script validates in `scripts_dir` and the
    pack of its language is installed: every script file that does not validate, every
    script without its pack, and every campaign without its script, is a FAIL."""
    campaigns: list[Campaign] = []
    results = []
    if database_ok:  # else the database line already says why nothing can be read
        try:
            campaigns = await _campaigns_needing_scripts(config)
        except Exception as exc:  # the finding itself
            results.append(CheckResult("scripts", False, f"cannot read campaigns: {_reason(exc)}"))
    for issues in directory.errors.values():
        first, *more = issues.splitlines()
        results.append(
            CheckResult("scripts", False, first + (f" (and {len(more)} more)" if more else ""))
        )
    results += [CheckResult("scripts", False, why) for why in plan.refused.values()]
    for campaign in campaigns:
        if campaign.script_name not in plan.served:
            state = "active" if campaign.status == "active" else "paused by the daemon"
            why = plan.refused.get(campaign.script_name) or directory.why_not(campaign.script_name)
            results.append(CheckResult(f"campaign[{campaign.name}]", False, f"{state}: {why}"))
    if not results:
        results.append(_scripts_verdict(directory, campaigns))
    return results


# --- ports, time ------------------------------------------------------------------------------


def check_port(name: str, host: str, port: int) -> CheckResult:
    """Bind the listener's address the way asyncio.start_server will, then let it go."""
    if port == 0:
        return CheckResult(name, True, f"{host}: ephemeral port, nothing to check")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return CheckResult(name, False, f"{host}:{port}: cannot resolve {host} ({exc.strerror})")
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                why = (
                    "in use (is outdial already running?)"
                    if exc.errno == errno.EADDRINUSE
                    else exc.strerror
                )
                return CheckResult(name, False, f"{host}:{port}: {why}")
    return CheckResult(name, True, f"{host}:{port} free")


def check_timezones(
    probes: tuple[tuple[str, datetime, timedelta], ...] = ZONE_PROBES,
) -> CheckResult:
    for zone, when, offset in probes:
        try:
            got = when.replace(tzinfo=ZoneInfo(zone)).utcoffset()
        except (ZoneInfoNotFoundError, ValueError) as exc:
            return CheckResult(
                "timezones", False, f"no data for {zone} ({_reason(exc)}); install tzdata"
            )
        if got != offset:
            return CheckResult(
                "timezones", False, f"{zone} on {when:%Y-%m-%d} is UTC{got}, expected UTC{offset}"
            )
    zones = sorted({p[0] for p in probes})
    return CheckResult("timezones", True, f"IANA data sane ({', '.join(zones)})")


def check_clock(now: datetime, db_skew: timedelta | None) -> CheckResult:
    if now < CLOCK_FLOOR or now.year >= 2100:
        return CheckResult("clock", False, f"system clock reads {now:%Y-%m-%d %H:%M} UTC")
    if db_skew is not None:
        skew = abs(db_skew)
        if skew > MAX_DB_CLOCK_SKEW:
            return CheckResult(
                "clock",
                False,
                f"differs from PostgreSQL's clock by {skew.total_seconds():.1f} s "
                "(calling windows and leases depend on it; run NTP on both hosts)",
            )
        return CheckResult("clock", True, f"{now:%Y-%m-%d %H:%M:%S} UTC, agrees with PostgreSQL")
    return CheckResult("clock", True, f"{now:%Y-%m-%d %H:%M:%S} UTC")


async def run_checks(config: Config) -> list[CheckResult]:
    """Every check but the config file's own (the caller loaded it)."""
    db = await check_database(config.database, config.state_dir)
    directory, plan, models = await check_packs(config)
    results = [db.result, *models]
    if config.dialer.enabled:
        timeout = config.dialer.ami_timeout_s
        results += await asyncio.gather(*(check_ami(t, timeout) for t in config.trunks))
    else:
        results.append(CheckResult("ami", True, "dialer disabled, AMI not used"))
    results.append(check_port("fastagi", config.agi.host, config.agi.port))
    results.append(check_port("audiosocket", config.audiosocket.host, config.audiosocket.port))
    if config.metrics.enabled:
        results.append(check_port("metrics", config.metrics.host, config.metrics.port))
    if config.api.enabled:
        results.append(check_port("api", config.api.host, config.api.port))
    results += await check_scripts(config, db.result.ok, directory, plan)
    results.append(check_timezones())
    results.append(check_clock(datetime.now(UTC), db.clock_skew))
    return results


# --- exposure: who can reach the listeners, who can change the files ------------------------

# The listeners that trust whoever connects: FastAGI and AudioSocket have no authentication
# in the protocol, the metrics endpoint none in outdial.
# Listener -> (why that matters, who alone should reach it).
_UNAUTHENTICATED = {
    "fastagi": ("FastAGI has no authentication: whoever reaches it can drive call control", "PBX"),
    "audiosocket": ("AudioSocket has no authentication beyond the call's UUID", "PBX"),
    "metrics": ("the metrics endpoint has no authentication", "Prometheus server"),
}


def check_exposure(config: Config) -> list[CheckResult]:
    """A WARN line for each unauthenticated listener bound beyond this host."""
    listeners = [
        ("fastagi", config.agi.host, config.agi.port),
        ("audiosocket", config.audiosocket.host, config.audiosocket.port),
    ]
    if config.metrics.enabled:
        listeners.append(("metrics", config.metrics.host, config.metrics.port))
    return [
        CheckResult(
            name,
            True,
            f"LISTENS BEYOND THIS HOST on {host or '*'}:{port}; {_UNAUTHENTICATED[name][0]}. "
            f"Bind it to 127.0.0.1, or firewall it to the {_UNAUTHENTICATED[name][1]} alone",
            warning=True,
        )
        for name, host, port in listeners
        if not is_loopback_only(host)
    ]


def is_loopback_only(host: str) -> bool:
    """True when every address `host` binds to is a loopback address ("", 0.0.0.0 and :: are
    every interface; a name counts by what it resolves to)."""
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return True  # cannot bind there either: check_port reports it
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_file_permissions(path: Path, what: str) -> CheckResult:
    """FAIL when others than the owner can change `path` (or replace it, through a writable
    directory); WARN when anyone on the host can read it."""
    name = f"{what} permissions"
    try:
        mode = path.stat().st_mode
        parent = path.resolve().parent.stat().st_mode
    except OSError as exc:
        return CheckResult(name, False, f"{path}: cannot stat ({exc.strerror})")
    octal = f"{stat.S_IMODE(mode):04o}"
    writers = _writers(mode)
    if writers:
        return CheckResult(
            name,
            False,
            f"{path} (mode {octal}) is writable by its {' and '.join(writers)}: whoever can "
            f"write it controls the daemon; chmod go-w {path}",
        )
    if parent & (stat.S_IWGRP | stat.S_IWOTH) and not parent & stat.S_ISVTX:
        return CheckResult(
            name,
            False,
            f"{path.resolve().parent} is writable by others than its owner: they can replace "
            f"{path.name}; chmod go-w {path.resolve().parent}",
        )
    if mode & stat.S_IROTH:
        return CheckResult(
            name,
            True,
            f"{path} (mode {octal}) is readable by every user of this host; "
            f"chmod o-r {path} (mode 0640 root:outdial, 0600 for credentials)",
            warning=True,
        )
    return CheckResult(name, True, f"{path} (mode {octal})")


def _writers(mode: int) -> list[str]:
    return [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if mode & bit]


def check_config_files(source: Path | None) -> list[CheckResult]:
    """The config file, and the credentials file beside it (outdial.env, which systemd reads
    as the unit's EnvironmentFile) when there is one."""
    if source is None:
        return []
    results = [check_file_permissions(source, "config")]
    credentials = source.parent / CREDENTIALS_FILE
    if credentials.exists():
        results.append(check_file_permissions(credentials, "credentials"))
    return results
