"""The shipped deployment files agree with the daemon's defaults and hold what operators need."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from agi.settings import AgiSettings, AudioSocketSettings, SessionSettings
from dialer.settings import DialerSettings, TrunkSettings
from pbxsim.dialplan import RECORD_STEP
from store.settings import PrivacySettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def parse_asterisk_conf(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of `key = value` / `key => value` lines, comments dropped, order kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        match = re.match(r"^([\w-]+)\s*=>?\s*(.*)$", line)
        assert match and current is not None, f"{path.name}:{lineno}: cannot parse {raw!r}"
        current.append((match[1], match[2]))
    return sections


def dialplan_apps(lines: list[tuple[str, str]], exten: str = "s") -> list[str]:
    """The applications of one extension in priority order (`exten => s,1,...`, `same => n`)."""
    apps: list[str] = []
    for key, value in lines:
        if key == "exten" and value.startswith(f"{exten},"):
            apps.append(value.split(",", 2)[2])
        elif key == "same" and apps:
            label_app = value.split(",", 1)[1]
            apps.append(re.sub(r"^\([\w-]+\)", "", label_app))  # drop a priority label
    return apps


@pytest.fixture(scope="module")
def extensions() -> dict[str, list[tuple[str, str]]]:
    return parse_asterisk_conf(DEPLOY / "asterisk" / "extensions_outdial.conf")


def test_outbound_context_runs_amd_then_agi_to_the_fastagi_port(
    extensions: dict[str, list[tuple[str, str]]],
) -> None:
    apps = dialplan_apps(extensions[TrunkSettings().context])
    names = [a.split("(", 1)[0] for a in apps]
    assert names.index("AMD") < names.index("AGI")
    agi = apps[names.index("AGI")]
    assert agi.startswith(f"AGI(agi://{AgiSettings().host}:{AgiSettings().port}/outdial?")
    assert "${OUTDIAL_CAMPAIGN}" in agi and "${OUTDIAL_LEAD}" in agi
    assert names[-1] == "Hangup"
    assert any("outdial-machine,s,1" in a for a in apps if a.startswith("GotoIf"))


def test_outbound_context_records_when_the_campaign_asks_just_before_the_agi(
    extensions: dict[str, list[tuple[str, str]]],
) -> None:
    """The step pbxsim runs in its tests is the one shipped; only calls that reach the AGI
    are recorded, so every recording's path is stored on its call (and can be purged)."""
    apps = dialplan_apps(extensions[TrunkSettings().context])
    names = [a.split("(", 1)[0] for a in apps]
    assert apps[names.index("AGI") - 1] == RECORD_STEP
    assert "MixMonitor" not in " ".join(dialplan_apps(extensions["outdial-machine"]))
    # MixMonitor's relative names land in Asterisk's monitor directory, where the retention
    # job deletes them.
    assert PrivacySettings().recordings_dir == Path("/var/spool/asterisk/monitor")


def test_transfer_and_machine_contexts(extensions: dict[str, list[tuple[str, str]]]) -> None:
    transfer = dialplan_apps(extensions[SessionSettings().transfer_context])
    assert any(a.startswith("Queue(") for a in transfer)
    assert "Dial(${OUTDIAL_TRANSFER_TARGET},60,t)" in transfer
    machine = dialplan_apps(extensions["outdial-machine"])
    assert [a.split("(")[0] for a in machine][-3:] == ["WaitForSilence", "Playback", "Hangup"]


def test_ami_user_is_least_privilege_and_local() -> None:
    sections = parse_asterisk_conf(DEPLOY / "asterisk" / "manager_outdial.conf")
    user = dict(sections[TrunkSettings().username])
    assert set(user["write"].split(",")) == {"originate", "call", "reporting"}
    assert set(user["read"].split(",")) == {"call", "dialplan"}
    assert user["deny"] == "0.0.0.0/0.0.0.0"
    assert user["permit"] == "127.0.0.1/255.255.255.255"
    assert "CHANGE-ME" in user["secret"]  # no working default secret is shipped


def test_amd_decides_inside_the_two_second_budget() -> None:
    general = dict(parse_asterisk_conf(DEPLOY / "asterisk" / "amd.conf")["general"])
    values = {k: int(v) for k, v in general.items()}
    # A person's short hello is judged after_greeting_silence after it ends.
    assert values["after_greeting_silence"] <= 800
    assert values["greeting"] + values["after_greeting_silence"] <= 2000
    assert values["total_analysis_time"] < 5000  # Asterisk's default


def test_systemd_unit_has_the_required_settings() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "outdial.service")
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "Restart": "on-failure",
        "User": "outdial",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/outdial",
        "StateDirectory": "outdial",
        "NoNewPrivileges": "true",
        "PrivateTmp": "true",
        "ProtectHome": "true",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter": "@system-service",
        "EnvironmentFile": "-/etc/outdial/outdial.env",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "KillMode": "mixed",
    }
    assert {k: service.get(k) for k in expected} == expected
    assert service["ExecStart"].endswith(" run")
    assert int(service["WatchdogSec"]) >= 10
    # The stop timeout leaves room for the dialer's drain.
    assert int(service["TimeoutStopSec"]) > DialerSettings().drain_timeout_s
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_env_example_names_only_variables_the_config_reads() -> None:
    text = (DEPLOY / "systemd" / "outdial.env.example").read_text()
    names = set(re.findall(r"^#?(OUTDIAL_[A-Z_]+)=", text, flags=re.MULTILINE))
    config_source = (Path(__file__).resolve().parents[2] / "outdial" / "config.py").read_text()
    assert names
    for name in names:
        assert f'"{name}"' in config_source, name


def test_audiosocket_default_matches_the_guide() -> None:
    readme = (DEPLOY / "asterisk" / "README.md").read_text()
    assert f"127.0.0.1:{AudioSocketSettings().port}" in readme
    assert "extensions_custom.conf" in readme and "manager_custom.conf" in readme
