"""The one configuration file: YAML validated by pydantic, secrets from the environment.

Lookup order: `--config`, `$OUTDIAL_CONFIG`, `./outdial.yaml`, `/etc/outdial/outdial.yaml`, else
built-in defaults. Unknown keys are errors; errors name the file, line and field path.
"""

from __future__ import annotations

import logging
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from agi.settings import AgiSettings, AudioSocketSettings, SessionSettings
from analytics.settings import AnalyticsSettings, WebhookSettings
from api.settings import ApiSettings
from compliance.settings import ComplianceSettings
from dialer.settings import DialerSettings, TrunkSettings
from dialog.yamlsource import YamlSyntaxError, parse_yaml
from emotion.settings import EmotionSettings
from langpacks.settings import ModelsSettings
from nlu.settings import NluSettings
from outdial.credentials import read_credential
from outdial.errors import UserError
from store.leadrows import known_region
from store.settings import DatabaseSettings, PrivacySettings
from voice.settings import AsrSettings, TtsSettings

SEARCH_PATHS = (Path("outdial.yaml"), Path("/etc/outdial/outdial.yaml"))


def log_level(name: str) -> int:
    """The logging level called `name` (any case); ValueError names the choices."""
    level = logging.getLevelNamesMapping().get(name.upper())
    if level is None:
        raise ValueError(f"unknown level {name!r} (use DEBUG, INFO, WARNING, ERROR or CRITICAL)")
    return level


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: str = "INFO"
    json_format: bool = Field(default=False, alias="json")

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        log_level(value)
        return value


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    state_dir: Path = Path(".outdial")
    # Region used to read numbers written without a country code.
    default_region: str = Field(default="US", min_length=2, max_length=2)
    database: DatabaseSettings = DatabaseSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    agi: AgiSettings = AgiSettings()
    audiosocket: AudioSocketSettings = AudioSocketSettings()
    dialer: DialerSettings = DialerSettings()
    trunks: list[TrunkSettings] = Field(default_factory=lambda: [TrunkSettings()])
    analytics: AnalyticsSettings = AnalyticsSettings()
    webhooks: WebhookSettings = WebhookSettings()
    models: ModelsSettings = ModelsSettings()
    # Conversation scripts (*.yaml) served by this daemon; SIGHUP reloads them. None: the
    # `scripts` directory beside the config file (/etc/outdial/scripts), or without a file
    # `<state_dir>/scripts`. A relative path is read from the config file's directory.
    scripts_dir: Path | None = None
    session: SessionSettings = SessionSettings()
    asr: AsrSettings = AsrSettings()
    tts: TtsSettings = TtsSettings()
    nlu: NluSettings = NluSettings()
    emotion: EmotionSettings = EmotionSettings()
    compliance: ComplianceSettings = ComplianceSettings()
    api: ApiSettings = ApiSettings()
    # Retention of personal data and the purge job (docs/privacy.md).
    privacy: PrivacySettings = PrivacySettings()

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        return known_region(value)  # as the lead import reads it

    @property
    def models_dir(self) -> Path:
        return self.models.dir or self.state_dir / "models"

    @property
    def scripts_path(self) -> Path:
        """Where the scripts are, as an absolute path (never the working directory's)."""
        return (self.scripts_dir or self.state_dir / "scripts").absolute()

    def beside(self, config_file: Path) -> Config:
        """Relative to the file it came from: the scripts directory of this config."""
        base = config_file.absolute().parent
        return self.model_copy(update={"scripts_dir": base / (self.scripts_dir or "scripts")})


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    source: Path | None  # None: built-in defaults


class ConfigError(UserError):
    pass


def find_config_file(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get("OUTDIAL_CONFIG")
    if env:
        return Path(env)
    return next((p for p in SEARCH_PATHS if p.is_file()), None)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc


def _apply_environment(data: dict[str, Any]) -> None:
    """Secrets and the state directory come from the environment when set, secrets else
    from systemd credentials (outdial/credentials.py)."""
    if url := os.environ.get("OUTDIAL_DATABASE_URL") or read_credential("database-url"):
        data.setdefault("database", {})["url"] = url
    if state := os.environ.get("OUTDIAL_STATE_DIR"):
        data["state_dir"] = state
    if secret := os.environ.get("OUTDIAL_WEBHOOK_SECRET") or read_credential("webhook-secret"):
        data.setdefault("webhooks", {})["secret"] = secret
    _apply_ami_secrets(data)


def _apply_ami_secrets(data: dict[str, Any]) -> None:
    """`OUTDIAL_AMI_SECRET_<TRUNK>` for one trunk, else `OUTDIAL_AMI_SECRET` (or the
    `ami-secret` credential) for all."""
    common = os.environ.get("OUTDIAL_AMI_SECRET") or read_credential("ami-secret")
    trunks = data.get("trunks")
    if trunks is None:
        if not (common or os.environ.get("OUTDIAL_AMI_SECRET_DEFAULT")):
            return
        trunks = data["trunks"] = [{}]  # the built-in default trunk, given its secret
    if not isinstance(trunks, list):
        return  # validation reports the wrong type with its position
    for trunk in trunks:
        if not isinstance(trunk, dict):
            continue
        name = str(trunk.get("name", "default"))
        secret = os.environ.get(f"OUTDIAL_AMI_SECRET_{name.upper()}") or common
        if secret:
            trunk["secret"] = secret


def parse_config(text: str, filename: str) -> Config:
    try:
        parsed = parse_yaml(text)
    except YamlSyntaxError as exc:
        where = exc.position
        raise ConfigError(f"{filename}:{where.line}:{where.col}: {exc.message}") from exc
    duplicates = parsed.source_map.duplicate_keys()
    if duplicates:
        raise ConfigError(
            "\n".join(
                f"{filename}:{d.position.line}:{d.position.col}: duplicate key {d.key!r}"
                for d in duplicates
            )
        )
    data = parsed.data if parsed.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}:1:1: the config must be a mapping of sections")
    _apply_environment(data)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            where = parsed.source_map.locate(loc)
            field_path = ".".join(str(p) for p in loc) or "(top)"
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{filename}:{where.line}:{where.col}: {field_path}: {message}")
        raise ConfigError("\n".join(lines)) from exc


def load_config(explicit: Path | None = None) -> LoadedConfig:
    path = find_config_file(explicit)
    if path is None:
        return LoadedConfig(parse_config("{}", "(defaults)"), None)
    return LoadedConfig(parse_config(_read(path), str(path)).beside(path), path)


NOT_SET = "(not set)"


def _is_secret_field(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def masked_dump(config: Config) -> dict[str, Any]:
    """The effective config as plain data: a set secret shows as ********, an unset one as
    (not set), so `config show` and `check` agree on whether a secret is there."""

    def mask(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "********" if value.get_secret_value() else NOT_SET
        if isinstance(value, BaseModel):
            fields = type(value).model_fields
            return {
                (info.alias or name): (
                    NOT_SET
                    if _is_secret_field(info.annotation) and getattr(value, name) is None
                    else mask(getattr(value, name))
                )
                for name, info in fields.items()
            }
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [mask(v) for v in value]
        return value

    return mask(config)


# Secrets written in the file, each with where it belongs instead (the operator guide: secrets
# come from the environment, e.g. /etc/outdial/outdial.env with mode 0600).
_SECRET_KEYS = {
    ("trunks", "*", "secret"): "OUTDIAL_AMI_SECRET_<TRUNK> or OUTDIAL_AMI_SECRET",
    ("database", "url"): "OUTDIAL_DATABASE_URL",
    ("webhooks", "secret"): "OUTDIAL_WEBHOOK_SECRET",
}


def secrets_in_file(text: str, filename: str) -> list[str]:
    """One warning per secret written in the config text (file:line:col, field, where it
    belongs); a database URL counts when it holds a password. Unparsable text gives none:
    parse_config reports it."""
    try:
        parsed = parse_yaml(text)
    except YamlSyntaxError:
        return []
    found = []
    for path, value in _leaves(parsed.data, ()):
        env = next((e for keys, e in _SECRET_KEYS.items() if _matches(keys, path)), None)
        if env is None or not isinstance(value, str) or not value:
            continue
        if path == ("database", "url") and not _url_has_password(value):
            continue
        where = parsed.source_map.locate(path)
        field_path = ".".join(str(p) for p in path)
        found.append(
            f"{filename}:{where.line}:{where.col}: {field_path}: a secret written in the config "
            f"file; set {env} in the environment instead"
        )
    return found


def _leaves(data: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], Any]]:
    if isinstance(data, dict):
        return [leaf for k, v in data.items() for leaf in _leaves(v, (*path, str(k)))]
    if isinstance(data, list):
        return [leaf for i, v in enumerate(data) for leaf in _leaves(v, (*path, i))]
    return [(path, data)]


def _matches(pattern: tuple[str, ...], path: tuple[str | int, ...]) -> bool:
    return len(pattern) == len(path) and all(
        p in ("*", k) for p, k in zip(pattern, path, strict=True)
    )


def _url_has_password(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.password) or "password=" in parts.query.lower()
