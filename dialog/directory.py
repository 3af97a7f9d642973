"""The scripts of a directory by name, as the daemon serves them (`scripts_dir/*.yaml`).

Campaigns name a script; only a script that validates in the daemon's directory can be served.
`campaign create`, `leads import --create-campaign` and `outdial check` read the directory here
so that they agree with the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dialog.validate import LoadedScript, ScriptError, did_you_mean, load_script


@dataclass(frozen=True)
class ScriptDirectory:
    path: Path
    scripts: dict[str, LoadedScript] = field(default_factory=dict)  # by script name
    errors: dict[Path, str] = field(default_factory=dict)  # files that do not validate
    missing: bool = False  # the directory itself does not exist

    def why_not(self, name: str) -> str:
        """Why the script `name` cannot be served, in one sentence."""
        if self.missing:
            return f"the scripts directory {self.path} does not exist"
        known = ", ".join(sorted(self.scripts)) or "none"
        text = f"no script named {name!r} in {self.path} (scripts there: {known})"
        if hint := did_you_mean(name, self.scripts):
            text += f"; {hint}"
        if self.errors:
            text += f"; {len(self.errors)} file(s) there do not validate"
        return text


def scan_scripts(directory: Path) -> ScriptDirectory:
    """Validate every `*.yaml` in `directory`; a name found twice keeps the first file."""
    if not directory.is_dir():
        return ScriptDirectory(directory, missing=True)
    result = ScriptDirectory(directory)
    for path in sorted(directory.glob("*.yaml")):
        try:
            loaded = load_script(path)
        except ScriptError as exc:
            result.errors[path] = str(exc)
            continue
        result.scripts.setdefault(loaded.script.name, loaded)
    return result
