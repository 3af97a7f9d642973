"""The shipped scripts, end to end with the real spaCy classifier (no stand-ins)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from dialog import DialogEngine, End, LoadedScript, OptOut, Say, Utterance, load_script
from dialog.schema import ListenNode
from nlu.classifier import IntentClassifier
from tests.dialog.conftest import ORDER_FIELDS


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlu")


def converse(loaded: LoadedScript, fields: dict[str, str], replies: list[str], cache: Path) -> list:
    clf = IntentClassifier.train(loaded.script.language, loaded.script.training_intents(), cache)
    engine = DialogEngine(loaded.script, fields)
    actions = engine.start()
    for reply in replies:
        result = clf.classify(reply, today=date(2025, 3, 12))
        actions += engine.handle(
            Utterance(reply, result.intent, result.confidence, result.entities)
        )
    return actions


def test_payment_reminder_promise(payment_zh: LoadedScript, cache: Path) -> None:
    actions = converse(
        payment_zh,
        {"customer_name": "张先生", "amount": "3500"},
        ["嗯是我", "要还多少钱", "我下周一先还三千五"],
        cache,
    )
    assert actions[-1] == End("completed", "promised_to_pay", True)
    assert any(isinstance(a, Say) and "3500元" in a.text for a in actions)


def test_payment_reminder_opt_out(payment_zh: LoadedScript, cache: Path) -> None:
    actions = converse(
        payment_zh,
        {"customer_name": "张先生", "amount": "3500"},
        ["以后别再给我打这种电话了"],
        cache,
    )
    assert OptOut() in actions and actions[-1] == End("opt_out", "opt_out", False)


def test_order_confirmation_change_address(order_en: LoadedScript, cache: Path) -> None:
    fields = ORDER_FIELDS
    replies = ["yeah this is ann", "i moved can you send it to my new address"]
    actions = converse(order_en, fields, replies, cache)
    assert actions[-1].target == "orders_queue" and actions[-1].reason == "address change"


def test_order_confirmation_confirmed(order_en: LoadedScript, cache: Path) -> None:
    fields = ORDER_FIELDS
    actions = converse(order_en, fields, ["speaking", "yes please ship it"], cache)
    assert actions[-1] == End("completed", "confirmed", True)


SHIPPED_DIR = Path(__file__).parents[2] / "scripts"
SHIPPED = sorted([*SHIPPED_DIR.glob("*.yaml"), *(SHIPPED_DIR / "library").glob("*.yaml")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_script_routes_ask_human_and_dispute(path: Path) -> None:
    script = load_script(path).script
    for intent in ("ask_human", "dispute"):
        unrouted = [
            name
            for name, node in script.nodes.items()
            if isinstance(node, ListenNode) and intent not in node.intents
        ]
        handler = getattr(script.handlers, intent)
        assert handler is not None and handler.goto or not unrouted, (intent, unrouted)
