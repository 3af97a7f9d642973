from __future__ import annotations

from pathlib import Path

import pytest

from compliance.words import WordCategory, WordFilter, WordListError, default_word_filter


def make(**categories: WordCategory) -> WordFilter:
    return WordFilter(categories)


def test_blocked_term_blocks_bot_text_and_is_reported() -> None:
    result = default_word_filter().check("You IDIOT, pay now", "bot")
    assert result.blocked
    assert [(h.category, h.term, h.action, h.start, h.end) for h in result.hits] == [
        ("insults", "idiot", "block", 4, 9)
    ]


def test_english_terms_need_word_boundaries() -> None:
    f = make(x=WordCategory(action="block", terms=["ass"]))
    assert f.check("this is a classic class", "bot").clean
    assert f.check("what an ASS.", "bot").blocked


def test_chinese_terms_match_inside_text() -> None:
    f = default_word_filter()
    result = f.check("你个傻逼吧", "customer")
    assert [h.term for h in result.hits] == ["傻逼"]
    assert result.escalate and not result.blocked


def test_full_width_letters_are_folded() -> None:
    assert default_word_filter().check("ＩＤＩＯＴ", "bot").blocked


def test_replace_substitutes_and_speaks() -> None:
    f = make(j=WordCategory(action="replace", replacement="account", terms=["collection case"]))
    result = f.check("Your Collection Case is open", "bot")
    assert (result.text, result.blocked) == ("Your account is open", False)


def test_flag_keeps_text_and_customer_actions_follow_on_customer() -> None:
    f = make(
        rates=WordCategory(action="flag", terms=["利率"]),
        spam=WordCategory(action="block", on_customer="ignore", terms=["稳赚不赔"]),
    )
    bot = f.check("年化利率是多少", "bot")
    assert (bot.text, bot.blocked) == ("年化利率是多少", False)
    assert [h.action for h in bot.hits] == ["flag"]
    assert f.check("你们说稳赚不赔", "customer").clean


def test_same_term_in_two_categories_reports_both() -> None:
    f = make(
        a=WordCategory(action="flag", terms=["penalty"]),
        b=WordCategory(action="block", terms=["Penalty"]),
    )
    result = f.check("a penalty applies", "bot")
    assert sorted(h.category for h in result.hits) == ["a", "b"] and result.blocked


def test_ten_thousand_terms(tmp_path: Path) -> None:
    terms = [f"term{i:05d}" for i in range(10_000)] + [f"禁词{i}号" for i in range(200)]
    f = make(big=WordCategory(action="block", terms=terms))
    assert f.term_count == 10_200
    assert f.check("nothing to see here term1", "bot").clean
    assert [h.term for h in f.check("say term09999 now", "bot").hits] == ["term09999"]
    assert [h.term for h in f.check("这是禁词42号吗", "bot").hits] == ["禁词42号"]


def test_word_list_files_merge_by_category(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("categories:\n  slurs:\n    action: block\n    terms: [foo]\n")
    b.write_text("categories:\n  slurs:\n    action: block\n    terms: [bar]\n")
    f = WordFilter.from_files([a, b])
    assert f.check("foo", "bot").blocked and f.check("bar", "bot").blocked


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("categories: [", "not valid YAML"),
        ("categories:\n  x:\n    action: shout\n    terms: [a]\n", "categories.x.action"),
        ("categories:\n  x:\n    action: block\n    terms: []\n", "categories.x.terms"),
        ("categories:\n  x:\n    action: block\n    terms: ['  ']\n", "must not be blank"),
        ("words: [a]\n", "categories: Field required"),
    ],
)
def test_bad_word_lists_are_rejected(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(WordListError, match=message):
        WordFilter.from_files([path])


def test_missing_word_list_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WordListError, match="cannot read word list"):
        WordFilter.from_files([tmp_path / "nope.yaml"])


def test_conflicting_actions_for_one_category_are_rejected(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("categories:\n  x:\n    action: block\n    terms: [foo]\n")
    b.write_text("categories:\n  x:\n    action: flag\n    terms: [bar]\n")
    with pytest.raises(WordListError, match="has action 'flag' here"):
        WordFilter.from_files([a, b])
