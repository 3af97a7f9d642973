"""`outdial script graph`: Mermaid, DOT and SVG of every shipped script, and of broken ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dialog import load_script
from dialog.graph import flow_graph, to_dot, to_mermaid
from outdial.cli import app
from outdial.errors import UserError
from tests.dialog.conftest import MINIMAL, SCRIPTS

runner = CliRunner()
SHIPPED = sorted([*SCRIPTS.glob("*.yaml"), *(SCRIPTS / "library").glob("*.yaml")])


def graph(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["script", "graph", *args])
    if isinstance(result.exception, UserError):
        return 1, "", str(result.exception)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_script_draws_every_node_and_edge(path: Path) -> None:
    script = load_script(path).script
    code, mermaid, warnings = graph(str(path))
    assert (code, warnings) == (0, "")
    assert mermaid.startswith("flowchart TD\n")
    for name, node in script.nodes.items():
        assert f"    n_{name}" in mermaid
        for intent, target in getattr(node, "intents", {}).items():
            assert f'n_{name} -->|"{intent}"| n_{target}' in mermaid
        if node.kind == "end":
            assert f"class n_{name} end_{node.disposition}" in mermaid
    for handler in ("opt_out", "ask_human", "dispute"):
        target = getattr(script.handlers, handler).goto
        assert f'p_any_question -->|"{handler}"| n_{target}' in mermaid
    assert not [line for line in mermaid.splitlines() if line.endswith(" unreachable")]


def test_dtmf_no_input_no_match_emotion_and_variant_overlay() -> None:
    mermaid = to_mermaid(flow_graph(load_script(SCRIPTS / "order_confirmation_en.yaml").script))
    assert 'n_confirm_order -->|"DTMF 3"| n_confirm_cancel' in mermaid
    assert 'n_confirm_identity -->|"no input x2"| n_no_answer' in mermaid
    assert 'n_confirm_order -->|"no match x3"| n_to_agent' in mermaid
    assert 'p_any_question -->|"agitation >= 0.85"| p_queue0' in mermaid
    assert 'p_start -.->|"variant direct"| n_read_order' in mermaid
    assert 'n_read_order["read_order (say) [variants: direct]"]' in mermaid


def test_a_broken_script_still_draws_and_shows_what_is_wrong(tmp_path: Path) -> None:
    broken = MINIMAL.replace("      deny: bye", "      deny: goodbye") + (
        '  end:\n    kind: end\n    say: x\n    disposition: completed\n    outcome: "a \\"b\\""\n'
    )
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    code, mermaid, warnings = graph(str(path))
    assert code == 0
    assert f"warning: {path}:19:7: undefined node 'goodbye'" in warnings
    assert "node 'end' is unreachable" in warnings
    assert "class n_goodbye undefined" in mermaid
    assert "class n_end unreachable" in mermaid and "class n_bye unreachable" not in mermaid
    # A node named `end` does not close the Mermaid block; quotes in labels are escaped.
    assert 'n_end[/"end: end completed / a #quot;b#quot;"/]' in mermaid
    dot = to_dot(flow_graph(load_script(SCRIPTS / "payment_reminder_zh.yaml").script))
    assert '"confirm_identity" -> "remind" [label="affirm"];' in dot


def test_a_script_that_does_not_fit_the_schema_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL.replace("kind: listen", "kind: lisen"))
    code, _, error = graph(str(path))
    assert code == 1 and f"{path}:13:3: nodes.ask: unknown node kind" in error


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_svg_with_graphviz_or_a_clear_error_without(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "flow.svg"
    code, _, error = graph(str(path), "--format", "svg", "-o", str(out))
    if shutil.which("dot"):
        assert code == 0, error
        svg = out.read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        start = load_script(path).script.start
        assert f">{start} (listen)</text>" in svg
    else:
        assert code == 1 and "SVG needs Graphviz" in error


def test_svg_without_graphviz_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, error = graph(str(SHIPPED[0]), "--format", "svg")
    assert code == 1 and "apt install graphviz" in error


def test_the_mermaid_in_the_authoring_guide_is_current() -> None:
    guide = (SCRIPTS.parent / "docs" / "scripts.md").read_text(encoding="utf-8")
    drawn = to_mermaid(flow_graph(load_script(SCRIPTS / "order_confirmation_en.yaml").script))
    assert f"```mermaid\n{drawn}```" in guide
