"""Conversation scripts: schema, validation, loading and the pure dialog engine.

Public API (the live call session uses these):

- `load_script(path) -> LoadedScript` / `parse_script(source, path) -> LoadedScript`
  (`.script`, `.source`, `.content_hash` sha256); `ScriptError.issues` on failure.
- `validate_script(path) -> list[ScriptIssue]` (`str(issue)` is `FILE:LINE:COL: message`).
- `Script.static_prompts()` for TTS pre-rendering, `Script.training_intents()` for
  `nlu.IntentClassifier.train`.
- `DialogEngine(script, variables, variant)`, `.start()`, `.handle(event)` with the events in
  `dialog.events` and the actions in `dialog.actions`.

Pure: no sockets, no database, no environment; imports only nlu and compliance.
"""

from dialog.actions import (
    Action,
    ComplianceHit,
    End,
    Listen,
    OptOut,
    PauseLead,
    Say,
    SetVariable,
    Transfer,
)
from dialog.engine import DialogEngine, ScriptRuntimeError
from dialog.events import Dtmf, EmotionScore, Event, Hangup, Silence, Unrecognized, Utterance
from dialog.schema import BASE_VARIANT, Script, json_schema_text
from dialog.validate import (
    RECORDING_NOT_ANNOUNCED,
    LoadedScript,
    ScriptError,
    ScriptIssue,
    announces_recording,
    load_script,
    parse_script,
    validate_script,
)

__all__ = [
    "BASE_VARIANT",
    "RECORDING_NOT_ANNOUNCED",
    "Action",
    "ComplianceHit",
    "DialogEngine",
    "Dtmf",
    "EmotionScore",
    "End",
    "Event",
    "Hangup",
    "Listen",
    "LoadedScript",
    "OptOut",
    "PauseLead",
    "Say",
    "Script",
    "ScriptError",
    "ScriptIssue",
    "ScriptRuntimeError",
    "SetVariable",
    "Silence",
    "Transfer",
    "Unrecognized",
    "Utterance",
    "announces_recording",
    "json_schema_text",
    "load_script",
    "parse_script",
    "validate_script",
]
