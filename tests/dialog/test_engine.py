"""The pure dialog engine: events in, actions out."""

from __future__ import annotations

from datetime import date

import pytest

from compliance.words import WordCategory, WordFilter
from dialog import (
    ComplianceHit,
    DialogEngine,
    Dtmf,
    EmotionScore,
    End,
    Hangup,
    Listen,
    LoadedScript,
    OptOut,
    PauseLead,
    Say,
    ScriptRuntimeError,
    SetVariable,
    Silence,
    Transfer,
    Unrecognized,
    Utterance,
    parse_script,
)
from dialog.actions import BARGE_IN_FLOOR_MS
from nlu.entities import extract_entities
from tests.dialog.conftest import MINIMAL, ORDER_FIELDS


def says(actions: list) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


def test_start_identifies_then_asks(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "Ann"})
    actions = engine.start()
    assert actions == [
        Say(
            "Hi, this is the automated assistant of Acme. Say stop calling to get no more calls.",
            "identification",
            interruptible=False,
            barge_in_min_ms=BARGE_IN_FLOOR_MS,
            static=True,
            cache_key=actions[0].cache_key,
        ),
        Say("Is this Ann?", "ask", True, BARGE_IN_FLOOR_MS, static=False, cache_key=None),
        Listen("ask", None, ("1",), 5000),
    ]
    assert actions[0].cache_key is not None and engine.node == "ask"


def test_intent_moves_to_next_node_and_ends_with_success(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "Ann", "amount": 250})
    engine.start()
    actions = engine.handle(Utterance("yes", "affirm", 0.97))
    assert actions == [
        Say("Thanks, you owe 250.", "done", True, BARGE_IN_FLOOR_MS, False, None),
        End("completed", "confirmed", success=True),
    ]
    assert engine.finished and engine.handle(Utterance("hello?", "repeat", 0.9)) == []


def test_dtmf_routes_and_unknown_digit_is_a_no_match(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "Ann"})
    engine.start()
    assert says(engine.handle(Dtmf("7"))) == ["Is this Ann?"]  # retry 1 of 1
    assert engine.handle(Dtmf("1"))[-1] == End("completed", "confirmed", True)


def test_no_input_reprompts_in_order_then_gives_up(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "Ann"})
    engine.start()
    first = engine.handle(Silence(5000))
    assert says(first) == ["Hello?"] and isinstance(first[-1], Listen)
    assert says(engine.handle(Silence(5000))) == ["Are you there?"]
    assert engine.handle(Silence(5000)) == [
        Say("Goodbye.", "bye", True, BARGE_IN_FLOOR_MS, True, engine_key("Goodbye.")),
        End("completed", "declined", False),
    ]


def engine_key(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def test_no_match_and_repeat(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "Ann"})
    engine.start()
    # "repeat" re-prompts without using up a retry.
    assert says(engine.handle(Utterance("what", "repeat", 0.9))) == ["Is this Ann?"]
    assert says(engine.handle(Utterance("blah", None, 0.2))) == ["Is this Ann?"]
    assert engine.handle(Utterance("blah", None, 0.2))[-1] == End("completed", "declined", False)


def test_unrecognized_speech_takes_the_no_match_path_not_the_no_input_one(
    order_en: LoadedScript,
) -> None:
    """The customer said something the grammar could not match: "Sorry, I didn't get that",
    never "Hello? Is this ...?" or "I'm not hearing anything"."""
    engine = DialogEngine(order_en.script, ORDER_FIELDS)
    engine.start()
    engine.handle(Utterance("yes", "affirm", 0.9))  # on to confirm_order
    first = engine.handle(Unrecognized(640, 0.31))
    assert says(first) == [
        "Sorry, I didn't get that. Say yes to confirm, change address, or cancel."
    ]
    assert engine.node == "confirm_order"
    engine.handle(Unrecognized(500, 0.2))
    # Out of no-match retries: the node's `then` (a person), not the no-input ending.
    assert isinstance(engine.handle(Unrecognized(700, 0.4))[-1], Transfer)


def test_opt_out_always_emits_opt_out_and_ends(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "Ann"})
    engine.start()
    assert engine.handle(Utterance("stop calling me", "opt_out", 0.99)) == [
        OptOut(),
        End("opt_out", "opt_out", False),
    ]


def test_opt_out_handler_says_goodbye_at_its_end_node(payment_zh: LoadedScript) -> None:
    engine = DialogEngine(payment_zh.script, {"customer_name": "张先生", "amount": "3500"})
    engine.start()
    actions = engine.handle(Utterance("别再打了", "opt_out", 0.99))
    assert actions[0] == OptOut()
    assert says(actions) == ["好的，已为您登记，今后不会再致电打扰，再见。"]
    assert actions[-1] == End("opt_out", "opt_out", False)


def test_who_is_this_without_handler_repeats_identification(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "Ann"})
    opening = says(engine.start())[0]
    actions = engine.handle(Utterance("are you a robot", "who_is_this", 0.9))
    assert says(actions) == [opening, "Is this Ann?"]
    assert actions[-1] == Listen("ask", None, ("1",), 5000)


def test_complaint_handler_transfers_with_summary(payment_zh: LoadedScript) -> None:
    engine = DialogEngine(payment_zh.script, {"customer_name": "张先生", "amount": "3500"})
    engine.start()
    actions = engine.handle(Utterance("我要投诉你们", "complaint", 0.95))
    assert says(actions) == ["非常抱歉给您带来不便。", "好的，正在为您转接人工客服，请稍候。"]
    transfer = actions[-1]
    assert isinstance(transfer, Transfer) and transfer.target == "collections_queue"
    assert "intents: complaint" in transfer.summary and "我要投诉你们" in transfer.summary


def test_dispute_in_collections_records_pauses_and_hands_over(payment_zh: LoadedScript) -> None:
    engine = DialogEngine(payment_zh.script, {"customer_name": "张先生", "amount": "3500"})
    engine.start()
    engine.handle(Utterance("是我", "affirm", 0.95))
    actions = engine.handle(Utterance("这钱不是我借的", "dispute", 0.9))
    assert actions[:2] == [
        ComplianceHit("customer", "ask_plan", "dispute", "dispute", "pause"),
        PauseLead("ask_plan"),
    ]
    transfer = actions[-1]
    assert isinstance(transfer, Transfer)
    assert (transfer.target, transfer.reason) == ("collections_queue", "customer disputes the debt")


def test_dispute_without_pause_is_recorded_only(order_en: LoadedScript) -> None:
    engine = DialogEngine(order_en.script, ORDER_FIELDS)
    engine.start()
    actions = engine.handle(Utterance("i never ordered that", "dispute", 0.9))
    assert actions[0] == ComplianceHit(
        "customer", "confirm_identity", "dispute", "dispute", "record"
    )
    assert not any(isinstance(a, PauseLead) for a in actions)
    assert isinstance(actions[-1], Transfer) and actions[-1].reason == "customer disputes the order"


def test_dispute_is_recorded_even_where_the_node_maps_it(minimal: LoadedScript) -> None:
    text = MINIMAL.replace("      affirm: done", "      affirm: done\n      dispute: done")
    engine = DialogEngine(parse_script(text, "m.yaml").script, {"customer_name": "Ann"})
    engine.start()
    actions = engine.handle(Utterance("that's not my debt", "dispute", 0.9))
    assert actions[0].category == "dispute" and isinstance(actions[-1], End)


def test_ask_human_handler_hands_over(order_en: LoadedScript) -> None:
    engine = DialogEngine(order_en.script, ORDER_FIELDS)
    engine.start()
    actions = engine.handle(Utterance("can i talk to a real person", "ask_human", 0.9))
    assert says(actions)[0] == "Of course."
    assert isinstance(actions[-1], Transfer) and actions[-1].target == "orders_queue"


def test_capture_sets_variables_used_later(payment_zh: LoadedScript) -> None:
    engine = DialogEngine(payment_zh.script, {"customer_name": "张先生", "amount": "3500"})
    engine.start()
    engine.handle(Utterance("是我", "affirm", 0.9))
    text = "我下周一还三千五"
    entities = tuple(extract_entities(text, "zh", date(2025, 3, 12)))
    actions = engine.handle(Utterance(text, "promise_to_pay", 0.9, entities))
    assert actions[:2] == [
        SetVariable("promise_date", "2025-03-17"),
        SetVariable("promise_amount", "3500"),
    ]
    assert engine.variables["promise_amount"] == "3500"
    assert actions[-1] == End("completed", "promised_to_pay", True)


def test_emotion_rules_fire_once_highest_first(payment_zh: LoadedScript) -> None:
    engine = DialogEngine(payment_zh.script, {"customer_name": "张先生", "amount": "3500"})
    engine.start()
    assert engine.handle(EmotionScore(0.3)) == []
    calm = engine.handle(EmotionScore(0.7))
    assert says(calm)[0] == "理解您的心情，我简单说明一下就好。" and isinstance(calm[-1], Listen)
    assert engine.handle(EmotionScore(0.7)) == []  # the calm rule already fired
    assert isinstance(engine.handle(EmotionScore(0.9))[-1], Transfer)


def test_repeated_no_match_handler_counts_across_nodes(order_en: LoadedScript) -> None:
    fields = ORDER_FIELDS
    engine = DialogEngine(order_en.script, fields)
    engine.start()
    engine.handle(Utterance("mumble", None, 0.1))  # 1
    engine.handle(Utterance("yes", "affirm", 0.9))  # -> confirm_order
    engine.handle(Utterance("mumble", None, 0.1))  # 2
    actions = engine.handle(Utterance("mumble", None, 0.1))  # 3 -> handler
    assert isinstance(actions[-1], Transfer) and actions[-1].reason == "customer needs an agent"


def test_variant_overrides_prompt_and_start(order_en: LoadedScript) -> None:
    fields = ORDER_FIELDS
    actions = DialogEngine(order_en.script, fields, variant="direct").start()
    assert says(actions)[1] == "Hi Ann, order A1 for a lamp is ready to ship to 1 Main St."
    assert actions[-1].node == "confirm_order"


def test_grammar_for_closed_questions(order_en: LoadedScript) -> None:
    fields = {"customer_name": "Ann", "order_number": "A1", "item": "x", "address": "y"}
    listen = DialogEngine(order_en.script, fields).start()[-1]
    assert listen == Listen(
        "confirm_identity",
        {"affirm": ("yes", "yeah", "speaking"), "deny": ("no",)},
        ("1", "2"),
        5000,
    )


def test_hangup_ends_the_call(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "Ann"})
    engine.start()
    assert engine.handle(Hangup()) == [End("hangup", "customer_hangup", False)]
    assert engine.node is None


# --- compliance: a blocked text never becomes a Say ----------------------------------------


def test_template_rendering_a_blocked_word_uses_the_fallback(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "idiot"})
    actions = engine.start()
    assert all("idiot" not in a.text.lower() for a in actions if isinstance(a, Say))
    assert ComplianceHit("bot", "ask", "insults", "idiot", "block", True) in actions
    assert says(actions)[1] == "Is this the account holder?"


def test_blocked_text_without_clean_fallback_is_not_spoken(minimal: LoadedScript) -> None:
    engine = DialogEngine(minimal.script, {"customer_name": "Ann", "amount": "you moron"})
    engine.start()
    actions = engine.handle(Utterance("yes", "affirm", 0.9))
    assert says(actions) == []
    assert actions == [
        ComplianceHit("bot", "done", "insults", "moron", "block", True),
        End("completed", "confirmed", True),
    ]


def test_custom_filter_replace_and_customer_escalation(payment_zh: LoadedScript) -> None:
    word_filter = WordFilter(
        {
            "jargon": WordCategory(action="replace", replacement="金额", terms=["欠款"]),
            "abuse": WordCategory(action="block", on_customer="escalate", terms=["滚"]),
        }
    )
    engine = DialogEngine(
        payment_zh.script, {"customer_name": "欠款人", "amount": "1"}, word_filter=word_filter
    )
    actions = engine.start()
    assert "请问您是金额人本人吗？" in says(actions)
    escalated = engine.handle(Utterance("滚", None, 0.1))
    assert escalated[0] == ComplianceHit("customer", "confirm_identity", "abuse", "滚", "escalate")
    assert isinstance(escalated[-1], Transfer)  # the abuse handler


# --- bad input ------------------------------------------------------------------------------


def test_bad_engine_input(minimal: LoadedScript) -> None:
    with pytest.raises(ValueError, match="missing required variables: customer_name"):
        DialogEngine(minimal.script, {})
    with pytest.raises(ValueError, match="unknown variant 'Z'"):
        DialogEngine(minimal.script, {"customer_name": "A"}, variant="Z")
    engine = DialogEngine(minimal.script, {"customer_name": "A"})
    with pytest.raises(ScriptRuntimeError, match="before start"):
        engine.handle(Silence())
    engine.start()
    with pytest.raises(ScriptRuntimeError, match="already called"):
        engine.start()
    with pytest.raises(ValueError, match="not a DTMF digit"):
        engine.handle(Dtmf("12"))
    with pytest.raises(ValueError, match="emotion score"):
        engine.handle(EmotionScore(1.5))
    with pytest.raises(TypeError, match="not a dialog event"):
        engine.handle("yes")  # type: ignore[arg-type]


def test_same_events_same_actions(minimal: LoadedScript) -> None:
    events = [Silence(), Utterance("what", "repeat", 0.8), Dtmf("9"), Utterance("yes", "affirm", 1)]

    def run() -> list:
        engine = DialogEngine(minimal.script, {"customer_name": "Ann"})
        return [engine.start(), *[engine.handle(e) for e in events]]

    assert run() == run()


def test_static_prompts_for_tts_match_what_is_said(minimal: LoadedScript) -> None:
    script = parse_script(MINIMAL).script
    opening = DialogEngine(script, {"customer_name": "Ann"}).start()[0]
    assert opening.static and opening.text in script.static_prompts()
    assert script.static_prompts() == [
        "Hi, this is the automated assistant of Acme. Say stop calling to get no more calls.",
        "Hello?",
        "Are you there?",
        "Is this the account holder?",
        "Goodbye.",
        # What a failed call says (OnError defaults), pre-rendered like every static text.
        "I'm sorry, something went wrong on our side.",
        "We'll call you back another time. Goodbye.",
    ]


def test_likely_replies_preview_each_expected_answer_without_moving(
    order_en: LoadedScript,
) -> None:
    engine = DialogEngine(order_en.script, ORDER_FIELDS)
    engine.start()
    replies = engine.likely_replies()
    # confirm_identity: affirm -> read_order (a say node, then confirm_order's question);
    # deny and wrong_person -> wrong_party; call_later -> call_back. Each target once.
    texts = [say.text for say in replies]
    read_order = f"Thanks. Order {ORDER_FIELDS['order_number']}"
    assert any(text.startswith(read_order) for text in texts)
    assert "Sorry for the trouble. Have a good day." in texts
    assert len(texts) == len(set(texts))
    assert engine.node == "confirm_identity"
    # Previewing changed nothing: the answer still leads where the preview said.
    actions = engine.handle(Utterance("yes", "affirm", 0.95))
    assert says(actions)[0] == next(t for t in texts if t.startswith(read_order))
    assert engine.node == "confirm_order"


def test_no_likely_replies_once_the_call_is_over(order_en: LoadedScript) -> None:
    engine = DialogEngine(order_en.script, ORDER_FIELDS)
    assert engine.likely_replies() == []
    engine.start()
    engine.handle(Hangup())
    assert engine.likely_replies() == []
