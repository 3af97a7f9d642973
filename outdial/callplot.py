"""`outdial calls show --plot FILE.png`: one call's timeline as a picture.

Two lanes (bot, customer) with a bar for each turn from its start to its end (a customer turn
ends at its end of speech; a bot turn, whose length is not logged, at the next turn's start), a
shaded gap for each reply's wait (customer's end of speech to the bot's first audio, labelled in
ms), markers for barge-ins and compliance hits, and the agitation score on its own axis below.
matplotlib is imported only here, so the rest of the CLI does not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from api.schemas import CallOut, TurnOut
from outdial.errors import UserError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_LANES = {"bot": 1.0, "customer": 0.0}
_COLOURS = {"bot": "tab:blue", "customer": "tab:orange"}
# A turn with nothing after it: its bar is drawn this long (seconds).
_LAST_TURN_S = 1.0


def _spans(turns: list[TurnOut]) -> list[tuple[TurnOut, float, float]]:
    """(turn, start, end) for turns placed in time, in time order."""
    placed = sorted((t for t in turns if t.offset_s is not None), key=lambda t: t.offset_s or 0)
    spans = []
    for index, turn in enumerate(placed):
        start = turn.offset_s or 0.0
        following = placed[index + 1].offset_s if index + 1 < len(placed) else None
        end = turn.end_offset_s or following or start + _LAST_TURN_S
        spans.append((turn, start, max(end, start + 0.05)))
    return spans


def draw_timeline(call: CallOut, target: Path) -> None:
    """Write the timeline PNG to `target`; UserError when it cannot be drawn or written."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display over SSH
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'outdial[plot]'") from None
    spans = _spans(call.turns)
    if not spans:
        raise UserError(f"--plot: call {call.call_id} has no turns placed in time to draw")
    figure, (lanes, agitation) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 4), gridspec_kw={"height_ratios": [2, 1]}
    )
    try:
        _draw_lanes(lanes, call, spans)
        _draw_agitation(agitation, spans)
        figure.suptitle(f"call {call.call_id} ({call.campaign or '-'}, {call.disposition})")
        figure.tight_layout()
        figure.savefig(target, dpi=100)
    except OSError as exc:
        raise UserError(f"--plot {target}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)


def _draw_lanes(ax: Axes, call: CallOut, spans: list[tuple[TurnOut, float, float]]) -> None:
    for turn, start, end in spans:
        lane = _LANES.get(turn.speaker, 0.5)
        ax.broken_barh(
            [(start, end - start)], (lane - 0.3, 0.6), color=_COLOURS.get(turn.speaker, "grey")
        )
        if turn.barge_in:
            ax.plot(start, lane + 0.4, "v", color="red")
        if turn.speaker == "bot" and turn.reply_ms is not None:
            wait_s = turn.reply_ms / 1000
            ax.axvspan(start - wait_s, start, color="grey", alpha=0.25)
            ax.annotate(
                f"{turn.reply_ms:.0f} ms", (start - wait_s / 2, 0.5), ha="center", fontsize=7
            )
    for event in call.compliance_events:
        if event.offset_s is not None:
            ax.axvline(event.offset_s, color="red", linestyle=":")
    ax.set_yticks(list(_LANES.values()), list(_LANES))
    ax.set_ylim(-0.6, 1.6)


def _draw_agitation(ax: Axes, spans: list[tuple[TurnOut, float, float]]) -> None:
    scored = [(start, t.agitation) for t, start, _ in spans if t.agitation is not None]
    if scored:
        ax.plot(*zip(*scored, strict=True), marker="o", color="tab:red")
    ax.set_ylim(0, 1)
    ax.set_ylabel("agitation")
    ax.set_xlabel("seconds since the bot's media started")
