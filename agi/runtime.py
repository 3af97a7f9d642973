"""What every call shares, loaded once per process: models, scripts and their classifiers."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from agi.settings import SessionSettings
from compliance.settings import ComplianceSettings
from compliance.words import WordFilter
from dialog import Listen, LoadedScript, Script, load_script
from dialog.spoken import spoken
from dialog.templates import TemplateError, is_static, placeholders, render
from emotion.settings import EmotionSettings
from nlu.classifier import IntentClassifier, NluResult
from nlu.settings import NluSettings
from voice.asr import GrammarError
from voice.packs import PackLoader, PackRequest, VoicePack
from voice.tts import split_first_clause, split_sentences

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class CallSettings:
    session: SessionSettings
    emotion: EmotionSettings
    compliance: ComplianceSettings
    nlu: NluSettings


@dataclass(frozen=True)
class ScriptRuntime:
    """One version of one script, ready for calls: live calls keep the object they started with."""

    loaded: LoadedScript
    version: int
    classifier: IntentClassifier
    # The language pack whose recognizer and voice serve this script's calls.
    pack: VoicePack

    @property
    def script(self) -> Script:
        return self.loaded.script

    @property
    def name(self) -> str:
        return self.loaded.script.name

    @cached_property
    def default_opening(self) -> str | None:
        """The opening as the script's defaults render it; None when it needs lead data."""
        return default_opening(self.loaded.script)


@dataclass
class CallServices:
    packs: PackLoader
    word_filter: WordFilter
    settings: CallSettings
    cpu: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=os.cpu_count() or 2, thread_name_prefix="outdial-cpu"
        )
    )
    # By pack, script language and wanted phrases.
    _grammars: dict[tuple[str, str, tuple[str, ...]], tuple[str, ...] | None] = field(
        default_factory=dict
    )

    async def run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.cpu, fn, *args)

    async def classify(self, runtime: ScriptRuntime, text: str) -> NluResult:
        return await self.run_cpu(runtime.classifier.classify, text)

    def grammar_for(self, runtime: ScriptRuntime, listen: Listen) -> tuple[str, ...] | None:
        """The phrases the script's ASR can listen for at this node, or None for free decoding.

        Phrases outside the model's vocabulary are left out (a production pack in the
        script's language hears them all); the language's `phrase_map` adds what the model
        can hear instead.
        """
        if listen.grammar is None:
            return None
        wanted = tuple(sorted({p for phrases in listen.grammar.values() for p in phrases}))
        key = (runtime.pack.name, runtime.script.language, wanted)
        if key not in self._grammars:
            self._grammars[key] = self._usable_grammar(runtime, wanted)
        return self._grammars[key]

    def _usable_grammar(
        self, runtime: ScriptRuntime, wanted: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        usable: list[str] = []
        for phrase in wanted:
            try:
                usable.extend(runtime.pack.asr.check_grammar([phrase]))
            except GrammarError:
                continue
        phrase_map = self.settings.session.phrase_map.get(runtime.script.language, {})
        usable.extend(heard for heard, meant in phrase_map.items() if meant in wanted)
        if not usable:
            log.warning("no grammar phrase is in the ASR vocabulary; decoding freely")
            return None
        return tuple(dict.fromkeys(usable))

    def shutdown(self) -> None:
        self.cpu.shutdown(wait=False, cancel_futures=True)
        self.packs.shutdown()


def default_opening(script: Script) -> str | None:
    """The opening identification as every call will say it, when it uses only variables with
    defaults (who is calling, how to opt out): rendered at load so the greeting starts at once.
    None when it depends on lead data, which is never cached on disk."""
    return _with_defaults(script, script.opening_template())


def _with_defaults(script: Script, template: str) -> str | None:
    """`template` filled from the script's defaults alone; None when it needs lead data (or
    is not a whole template, e.g. a piece cut inside a placeholder's format spec)."""
    defaults: dict[str, str] = {}
    try:
        names = placeholders(template)
    except TemplateError:
        return None
    for name in names:
        spec = script.variables.get(name)
        if spec is None or spec.default is None:
            return None
        # As the engine will say it (a `date` default as a date).
        defaults[name] = spoken(spec.default, spec.type, script.language, spec.currency)
    return render(template, defaults)


def lead_free_pieces(script: Script) -> list[str]:
    """Pieces of prompts with variables that hold no lead data, as the session speaks them.

    A reply's short first clause is synthesised on its own ("Thanks.", "Great,") and the
    rest sentence by sentence; the clauses and sentences that are literal text, or use only
    script defaults ("Thank you, goodbye.", "...will arrive in the next few days."), are the
    same on every call, so they come from the prompt cache instead of Piper.
    """
    pieces: list[str] = []
    for location, template in script.texts():
        if is_static(template) or location[0] == "identification":
            continue  # pre-rendered whole: `Script.static_prompts`, `default_opening`
        head, tail = split_first_clause(template)
        candidates = [head, tail, *split_sentences(template), *split_sentences(tail)]
        pieces += [t for c in candidates if c and (t := _with_defaults(script, c)) is not None]
    return list(dict.fromkeys(pieces))


def opening_pieces(script: Script) -> list[str]:
    """The clauses and sentences of an opening with lead data that hold none ("This call may
    be recorded."), cut as the session streams the opening; the rest is never cached."""
    head, tail = split_first_clause(script.opening_template())
    candidates = [head, tail, *split_sentences(tail)]
    return [t for c in candidates if c and (t := _with_defaults(script, c)) is not None]


def cacheable_texts(script: Script) -> list[str]:
    """Every text of the script that may go to the on-disk prompt cache: made from the script
    alone (literal text and defaults), never from a lead's data."""
    texts = script.static_prompts() + lead_free_pieces(script)
    opening = default_opening(script)
    # An opening with lead data is streamed: only its pieces without any are cached.
    return texts + ([opening] if opening is not None else opening_pieces(script))


def train_classifier(
    loaded: LoadedScript, settings: NluSettings, cache_dir: Path
) -> IntentClassifier:
    script = loaded.script
    return IntentClassifier.train(
        script.language,
        script.training_intents(),
        settings.cache_dir or cache_dir,
        threshold=settings.threshold,
        epochs=settings.epochs,
    )


async def prepare_script(
    path: Path, services: CallServices, cache_dir: Path, version: int
) -> ScriptRuntime:
    """Load, train and pre-render one script file (CPU work off the event loop).

    Raises ScriptError for a script that does not validate and PackUnavailable for one whose
    language pack is not installed (its pack is loaded here the first time a script needs it).
    """
    loaded = await asyncio.to_thread(load_script, path)
    return await prepare_loaded(loaded, services, cache_dir, version)


async def prepare_loaded(
    loaded: LoadedScript, services: CallServices, cache_dir: Path, version: int
) -> ScriptRuntime:
    """Train and pre-render a validated script (from a file or a stored version); loads its
    language pack the first time a script needs it (PackUnavailable when not installed)."""
    pack = await services.packs.for_request(PackRequest.of(loaded.script))
    classifier = await services.run_cpu(train_classifier, loaded, services.settings.nlu, cache_dir)
    await pack.tts.prerender(cacheable_texts(loaded.script))
    for pace, texts in loaded.script.adapted_prompts().items():
        await pack.tts.prerender(texts, pace)
    return ScriptRuntime(loaded=loaded, version=version, classifier=classifier, pack=pack)
