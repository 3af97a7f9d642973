"""A script's flow as a picture: Mermaid text (renders in Git hosting and most editors) or
Graphviz DOT (`dot -Tsvg` makes an SVG).

Shown: every node by kind (say, listen, transfer, end), intent and DTMF edges, no-input and
no-match paths, the global handlers and emotion rules (from "any question"), ends coloured by
disposition, and A/B variants as dashed overlays (another start; reworded prompts are marked
on their node). A script with broken references still draws: an undefined node is drawn in red
and unreachable nodes are dashed red, as `validate` reports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from dialog.schema import (
    EmotionRule,
    EndNode,
    Handlers,
    ListenNode,
    SayNode,
    Script,
    TransferNode,
)
from dialog.validate import reachable_nodes

Kind = Literal["start", "say", "listen", "transfer", "end", "any", "queue", "undefined"]
# Pseudo nodes carry "@", which no script node name can.
START = "@start"
ANY = "@any_question"

# Ends by disposition: the usual ones get fixed colours, others cycle through the rest.
_DISPOSITION_COLOURS = {
    "completed": "#c8e6c9",
    "opt_out": "#ffcdd2",
    "wrong_party": "#e0e0e0",
    "callback": "#fff9c4",
    "no_response": "#ffe0b2",
}
_SPARE_COLOURS = ("#bbdefb", "#d1c4e9", "#b2dfdb", "#f8bbd0")
_TRANSFER_COLOUR = "#b3e5fc"


@dataclass(frozen=True, slots=True)
class GraphNode:
    id: str
    label: str
    kind: Kind
    disposition: str | None = None
    unreachable: bool = False
    variants: tuple[str, ...] = ()  # variants that reword this node's prompt


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str
    target: str
    label: str = ""
    overlay: bool = False  # a variant's path: drawn dashed


@dataclass
class FlowGraph:
    name: str
    nodes: dict[str, GraphNode] = field(default_factory=dict)
    edges: list[GraphEdge] = field(default_factory=list)

    def colour_of(self, disposition: str) -> str:
        if disposition in _DISPOSITION_COLOURS:
            return _DISPOSITION_COLOURS[disposition]
        others = sorted(
            {n.disposition for n in self.nodes.values() if n.disposition}
            - set(_DISPOSITION_COLOURS)
        )
        return _SPARE_COLOURS[others.index(disposition) % len(_SPARE_COLOURS)]


def flow_graph(script: Script) -> FlowGraph:
    """The script's nodes and edges; works on any schema-valid script, even a broken one."""
    graph = FlowGraph(script.name)
    reachable = reachable_nodes(script)
    reworded: dict[str, list[str]] = {}
    for vname, variant in script.variants.items():
        for node_name in variant.prompts:
            reworded.setdefault(node_name, []).append(vname)
    graph.nodes[START] = GraphNode(START, "call answered: identification", "start")
    for name, node in script.nodes.items():
        graph.nodes[name] = GraphNode(
            name,
            _label(name, node),
            node.kind,
            node.disposition if isinstance(node, EndNode) else None,
            name not in reachable,
            tuple(reworded.get(name, ())),
        )
    graph.edges.append(GraphEdge(START, script.start))
    for vname, variant in script.variants.items():
        if variant.start:
            graph.edges.append(GraphEdge(START, variant.start, f"variant {vname}", overlay=True))
    for name, node in script.nodes.items():
        graph.edges += _node_edges(name, node)
    graph.edges += _global_edges(script, graph)
    for edge in graph.edges:
        if edge.target not in graph.nodes:
            graph.nodes[edge.target] = GraphNode(
                edge.target, f"{edge.target}: undefined node", "undefined"
            )
    return graph


def _label(name: str, node: SayNode | ListenNode | TransferNode | EndNode) -> str:
    if isinstance(node, TransferNode):
        return f"{name}: transfer to {node.target}"
    if isinstance(node, EndNode):
        return f"{name}: end {node.disposition} / {node.outcome}"
    return f"{name} ({node.kind})"


def _node_edges(
    name: str, node: SayNode | ListenNode | TransferNode | EndNode
) -> Iterator[GraphEdge]:
    if isinstance(node, SayNode):
        yield GraphEdge(name, node.next)
    elif isinstance(node, ListenNode):
        for intent, target in node.intents.items():
            yield GraphEdge(name, target, intent)
        for digit, target in node.dtmf.items():
            yield GraphEdge(name, target, f"DTMF {digit}")
        yield GraphEdge(name, node.no_input.then, f"no input x{node.no_input.max_retries + 1}")
        yield GraphEdge(name, node.no_match.then, f"no match x{node.no_match.max_retries + 1}")


def _global_edges(script: Script, graph: FlowGraph) -> list[GraphEdge]:
    """Handlers and emotion rules, which apply at any question."""
    edges: list[GraphEdge] = []
    for hname in Handlers.model_fields:
        handler = getattr(script.handlers, hname)
        if handler is not None and handler.goto:
            edges.append(GraphEdge(ANY, handler.goto, hname))
    queues = sorted({target for r in script.on_emotion if (target := _emotion_target(r))})
    for rule in script.on_emotion:
        when = f"agitation >= {rule.above:g}"
        target = _emotion_target(rule)
        if rule.action == "shorten" and rule.goto:
            edges.append(GraphEdge(ANY, rule.goto, f"{when}: shorten"))
        elif target is not None:
            queue = f"@queue{queues.index(target)}"
            graph.nodes[queue] = GraphNode(queue, f"transfer to {target}", "queue")
            label = f"{when}: a person, if accepted" if rule.action == "adapt" else when
            edges.append(GraphEdge(ANY, queue, label))
    if edges:
        graph.nodes[ANY] = GraphNode(ANY, "any question (handlers, emotion)", "any")
    return edges


# --- Mermaid ------------------------------------------------------------------------------


def to_mermaid(graph: FlowGraph) -> str:
    lines = ["flowchart TD"]
    for node in graph.nodes.values():
        lines.append(f"    {_mid(node.id)}{_mermaid_shape(node)}")
    for edge in graph.edges:
        arrow = "-.->" if edge.overlay else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {_mid(edge.source)} {arrow}{label} {_mid(edge.target)}")
    lines += _mermaid_styles(graph)
    return "\n".join(lines) + "\n"


def _mid(node_id: str) -> str:
    # Prefixed: a node named `end` would otherwise close the Mermaid block.
    return "p_" + node_id[1:] if node_id.startswith("@") else "n_" + node_id


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def _mermaid_shape(node: GraphNode) -> str:
    label = node.label + (f" [variants: {', '.join(node.variants)}]" if node.variants else "")
    text = f'"{_mermaid_text(label)}"'
    shapes = {
        "start": f"(({text}))",
        "say": f"[{text}]",
        "listen": f"([{text}])",
        "transfer": f"[[{text}]]",
        "queue": f"[[{text}]]",
        "end": f"[/{text}/]",
        "any": f"{{{{{text}}}}}",
        "undefined": f"[{text}]",
    }
    return shapes[node.kind]


def _mermaid_styles(graph: FlowGraph) -> Iterator[str]:
    dispositions = sorted({n.disposition for n in graph.nodes.values() if n.disposition})
    for disposition in dispositions:
        yield f"    classDef end_{disposition} fill:{graph.colour_of(disposition)},stroke:#555"
    yield f"    classDef transfer fill:{_TRANSFER_COLOUR},stroke:#555"
    yield "    classDef unreachable stroke:#d32f2f,stroke-width:2px,stroke-dasharray:5 5"
    yield "    classDef undefined fill:#ef9a9a,stroke:#b71c1c,stroke-width:2px"
    for node in graph.nodes.values():
        if node.disposition:
            yield f"    class {_mid(node.id)} end_{node.disposition}"
        elif node.kind == "undefined":
            yield f"    class {_mid(node.id)} undefined"
        elif node.kind in ("transfer", "queue"):
            yield f"    class {_mid(node.id)} transfer"
        if node.unreachable:
            yield f"    class {_mid(node.id)} unreachable"


# --- DOT ----------------------------------------------------------------------------------


def to_dot(graph: FlowGraph) -> str:
    lines = [
        f"digraph {_dot_text(graph.name)} {{",
        "    rankdir=TB;",
        '    node [fontname="sans-serif", fontsize=11];',
        '    edge [fontname="sans-serif", fontsize=9];',
    ]
    for node in graph.nodes.values():
        lines.append(f"    {_dot_text(node.id)} [{_dot_attrs(graph, node)}];")
    for edge in graph.edges:
        attrs = [f"label={_dot_text(edge.label)}"] if edge.label else []
        if edge.overlay:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {_dot_text(edge.source)} -> {_dot_text(edge.target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_DOT_SHAPES = {
    "start": "oval",
    "say": "box",
    "listen": "box",
    "transfer": "cds",
    "queue": "cds",
    "end": "doubleoctagon",
    "any": "hexagon",
    "undefined": "box",
}


def _dot_attrs(graph: FlowGraph, node: GraphNode) -> str:
    label = node.label + (f"\nvariants: {', '.join(node.variants)}" if node.variants else "")
    attrs = [f"label={_dot_text(label)}", f"shape={_DOT_SHAPES[node.kind]}"]
    styles = ["rounded"] if node.kind == "listen" else []
    fill = None
    if node.disposition:
        fill = graph.colour_of(node.disposition)
    elif node.kind in ("transfer", "queue"):
        fill = _TRANSFER_COLOUR
    elif node.kind == "undefined":
        fill = "#ef9a9a"
    if fill:
        styles.append("filled")
        attrs.append(f'fillcolor="{fill}"')
    if node.unreachable:
        styles.append("dashed")
        attrs.append('color="#d32f2f"')
    if styles:
        attrs.append(f'style="{",".join(styles)}"')
    return ", ".join(attrs)


def _emotion_target(rule: EmotionRule) -> str | None:
    """Where an emotion rule may hand the call over: its transfer, or the person it offers."""
    if rule.action == "transfer":
        return rule.target
    offer = rule.adapt.offer_person if rule.adapt is not None else None
    return offer.target if offer is not None else None
