"""Where language packs live and which catalogue names them (`models:` in the config)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from voice.settings import PACK_NAME, PackSettings


class ModelsSettings(BaseModel):
    """Language packs (`outdial models`): each script is served by the pack of its language."""

    model_config = ConfigDict(extra="forbid")

    # None: `<state_dir>/models`.
    dir: Path | None = None
    # Extra or replacement packs (YAML), e.g. another language or a local mirror's URLs.
    catalogue: Path | None = None
    # Per-pack settings by pack name (`en`, `zh`, or `packaged` for the models that come
    # with the install); a pack not named here gets the defaults.
    packs: dict[Annotated[str, Field(pattern=PACK_NAME)], PackSettings] = Field(
        default_factory=dict
    )

    @model_validator(mode="before")
    @classmethod
    def _no_daemon_language(cls, data: Any) -> Any:
        if isinstance(data, dict) and "language" in data:
            raise ValueError(
                "`models.language` is gone: each script is served by the pack of its own "
                "language (operator guide, section 6); remove the key"
            )
        return data

    def recognizers(self, pack: str, max_calls: int) -> int:
        """Recognizers kept for `pack`'s calls: its setting, else one per call slot."""
        settings = self.packs.get(pack)
        return settings.recognizers if settings and settings.recognizers else max_calls
