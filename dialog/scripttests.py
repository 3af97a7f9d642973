"""Running scripts' test cases (`dialog.cases`) with the real intent classifier: for
`outdial script test`, and before a promotion (CLI and API)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path

from dialog import ScriptError, load_script
from dialog.cases import CaseFileError, CaseResult, cases_dir, load_cases, run_cases
from nlu.entities import Entity
from nlu.settings import NluSettings


class ScriptTestError(ValueError):
    """A script or case file that does not validate (FILE:LINE:COL in the message)."""


def run_script_tests(files: list[Path], cache_dir: Path) -> tuple[list[CaseResult], list[str]]:
    """Every case of every script; also the names of scripts that have no cases."""
    from nlu.classifier import IntentClassifier  # spaCy: only when testing

    results: list[CaseResult] = []
    untested: list[str] = []
    for file in files:
        try:
            script = load_script(file).script
        except ScriptError as exc:
            raise ScriptTestError(f"{file} does not validate:\n{exc}") from exc
        case_files = sorted(cases_dir(file, script).glob("*.yaml"))
        if not case_files:
            untested.append(script.name)
            continue
        settings = NluSettings()
        classifier = IntentClassifier.train(
            script.language,
            script.training_intents(),
            cache_dir,
            threshold=settings.threshold,
            epochs=settings.epochs,
        )

        def classify(
            text: str, today: date, clf: IntentClassifier = classifier
        ) -> tuple[str | None, float, tuple[Entity, ...]]:
            result = clf.classify(text, today=today)
            return result.intent, result.confidence, result.entities

        for case_file in case_files:
            try:
                loaded = load_cases(case_file)
            except CaseFileError as exc:
                raise ScriptTestError(str(exc)) from exc
            results += run_cases(script, loaded, classify)
    return results, untested


def stored_version_failures(
    name: str, source: str, cases: Mapping[str, str], cache_dir: Path
) -> list[str]:
    """A stored version's cases (file name -> text), run as `outdial script test` runs them."""
    with tempfile.TemporaryDirectory(prefix="outdial-promote-") as tmp:
        path = Path(tmp) / f"{name}.yaml"
        path.write_text(source, encoding="utf-8")
        tests = Path(tmp) / "tests" / name
        tests.mkdir(parents=True)
        for file_name, text in cases.items():
            (tests / Path(file_name).name).write_text(text, encoding="utf-8")
        results, untested = run_script_tests([path], cache_dir)
    failures = [f"{r.case}: {r.failure}" for r in results if not r.passed]
    return failures + [f"{name}: no test cases" for name in untested]
