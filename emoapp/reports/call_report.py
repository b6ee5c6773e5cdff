"""The call report (``emoapp analyze CALL --speakers channels --report DIR``).

:func:`summarize_call` turns a :class:`~emoapp.calls.analysis.CallResult` into plain
figures (``summary.json``): per speaker the talk time and its share, the share of speech
time per fused label, the mean valence, and the moments where valence drops most (top 3:
the largest fall from the highest valence of the previous :data:`DROP_WINDOW_S` seconds,
at least that far apart); and the time both speakers talk at once.

:func:`write_call_report` writes ``report.html`` beside it: one self-contained page (the
figures are SVG drawn by matplotlib and embedded; no script, no link to fetch), readable
without code: who talked when, and per speaker a timeline of valence with the speech
shaded and the drops marked, the fused label probabilities over time, and the share of
speech time per label. matplotlib is imported only when a report is written.
"""

from __future__ import annotations

import html
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoapp.core.errors import EmoappError
from emoapp.core.taxonomy import CANONICAL_LABELS

if TYPE_CHECKING:
    from emoapp.calls.analysis import CallResult

DROP_WINDOW_S = 5.0
MIN_DROP = 0.05
"""A fall in valence smaller than this is not reported as a drop."""
SEGMENT_LAG_S = 0.5
LABEL_COLORS = {
    "neutral": "#9e9e9e",
    "happy": "#f2b701",
    "sad": "#3969ac",
    "angry": "#e73f74",
    "fearful": "#7f3c8d",
    "disgusted": "#11a579",
    "surprised": "#f97b04",
}
SPEAKER_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
CAVEAT = (
    "emoapp estimates the emotion a voice or a text displays. It does not know what "
    "anyone feels, and it is not a lie detector or a diagnostic tool."
)


# --- figures in numbers --------------------------------------------------------------------


def valence_drops(
    series: Sequence[tuple[float, float]],
    window_s: float = DROP_WINDOW_S,
    top: int = 3,
    min_drop: float = MIN_DROP,
) -> list[dict[str, float]]:
    """The ``top`` largest falls of a (t, valence) series: at each t, the fall from the
    highest valence of the previous ``window_s`` seconds; picked greedily, largest first,
    at least ``window_s`` apart; falls under ``min_drop`` are left out."""
    candidates: list[dict[str, float]] = []
    start = 0
    for i, (t, value) in enumerate(series):
        while series[start][0] < t - window_s:
            start += 1
        best = max(range(start, i + 1), key=lambda k: series[k][1])
        drop = series[best][1] - value
        if drop >= min_drop:
            candidates.append(
                {
                    "t": round(t, 3),
                    "from_t": round(series[best][0], 3),
                    "valence_from": round(series[best][1], 4),
                    "valence_to": round(value, 4),
                    "drop": round(drop, 4),
                }
            )
    chosen: list[dict[str, float]] = []
    for candidate in sorted(candidates, key=lambda c: (-c["drop"], c["t"])):
        if all(abs(candidate["t"] - c["t"]) >= window_s for c in chosen):
            chosen.append(candidate)
        if len(chosen) == top:
            break
    return sorted(chosen, key=lambda c: c["t"])


def _in_speech(t: float, segments: Sequence[tuple[float, float]]) -> bool:
    return any(start <= t <= end + SEGMENT_LAG_S for start, end in segments)


def label_shares(
    rows: Sequence[dict[str, Any]], segments: Sequence[tuple[float, float]]
) -> dict[str, float]:
    """Share of the speaker's speech time per fused label (rows during speech; all rows
    with an estimate when no segment was found). Sums to 1 (or is empty)."""
    fused = [r for r in rows if r.get("fused")]
    during = [r for r in fused if _in_speech(r["t"], segments)] if segments else fused
    counts = Counter(r["fused"]["label"] for r in during)
    total = sum(counts.values())
    return (
        {label: round(counts[label] / total, 4) for label in CANONICAL_LABELS if counts[label]}
        if total
        else {}
    )


def summarize_call(result: CallResult, models: dict[str, str] | None = None) -> dict[str, Any]:
    """The numbers of the report (``summary.json``)."""
    from emoapp.calls.analysis import overlap_s

    plan = result.plan
    talk_total = sum(s.talk_s for s in plan.active)
    speakers = []
    for speaker in plan.speakers:
        rows = result.rows.get(speaker.name, [])
        series = [
            (float(r["t"]), float(r["fused"]["valence"]))
            for r in rows
            if r.get("fused") and r["fused"].get("valence") is not None
        ]
        speakers.append(
            {
                "name": speaker.name,
                "channel": None if speaker.channel is None else speaker.channel + 1,
                "silent": speaker.silent,
                "talk_s": round(speaker.talk_s, 3),
                "talk_share": round(speaker.talk_s / talk_total, 4) if talk_total else 0.0,
                "segments": len(speaker.segments),
                "cues": len(speaker.entries),
                "label_share": label_shares(rows, speaker.segments),
                "valence_mean": round(sum(v for _, v in series) / len(series), 4)
                if series
                else None,
                "valence_drops": valence_drops(series),
                "rows": len(rows),
            }
        )
    active = plan.active
    overlap = 0.0
    for i, a in enumerate(active):
        for b in active[i + 1 :]:
            overlap += overlap_s(a.segments, b.segments)
    return {
        "media": plan.media.name,
        "duration_s": round(plan.duration, 3),
        "speakers": speakers,
        "overlap_s": round(overlap, 3),
        "overlap_share": round(overlap / talk_total, 4) if talk_total else 0.0,
        "models": dict(models or {}),
        "text_from": "transcript" if any(s.entries for s in plan.speakers) else None,
        "notes": list(plan.warnings),
        "about": CAVEAT,
    }


# --- figures -------------------------------------------------------------------------------


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(
        buffer,
        format="svg",
        bbox_inches="tight",
        metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
    )
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog: the SVG goes inline


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    figure.set_layout_engine("constrained")
    return figure


def _talk_figure(result: CallResult) -> str:
    plan = result.plan
    figure = _figure(10, 0.55 * len(plan.speakers) + 1.0)
    axes = figure.add_subplot()
    for i, speaker in enumerate(plan.speakers):
        bars = [(start, end - start) for start, end in speaker.segments]
        axes.broken_barh(bars, (i - 0.35, 0.7), color=SPEAKER_COLORS[i % len(SPEAKER_COLORS)])
    axes.set_yticks(range(len(plan.speakers)), [s.name for s in plan.speakers])
    axes.invert_yaxis()
    axes.set_xlim(0, max(plan.duration, 1.0))
    axes.set_xlabel("time (s)")
    axes.grid(axis="x", alpha=0.3)
    return _svg(figure)


def _speaker_figure(
    rows: Sequence[dict[str, Any]],
    segments: Sequence[tuple[float, float]],
    drops: Sequence[dict[str, float]],
    duration: float,
) -> str:
    figure = _figure(10, 4.2)
    valence_axes, label_axes = figure.subplots(2, 1, sharex=True, height_ratios=[1, 1.2])
    for start, end in segments:
        valence_axes.axvspan(start, end, color="#dddddd", lw=0)
    times = [r["t"] for r in rows]
    valence = [r["fused"]["valence"] if r.get("fused") else None for r in rows]
    valence_axes.plot(
        times, [float("nan") if v is None else v for v in valence], color="#222222", lw=1.5
    )
    for number, drop in enumerate(drops, start=1):
        valence_axes.annotate(
            f"drop {number}",
            (drop["t"], drop["valence_to"]),
            xytext=(0, -16),
            textcoords="offset points",
            ha="center",
            color="#c0392b",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "#c0392b"},
        )
        valence_axes.plot([drop["t"]], [drop["valence_to"]], "o", color="#c0392b", ms=5)
    valence_axes.set_ylim(0, 1)
    valence_axes.set_ylabel("valence")
    valence_axes.set_title("valence (grey: this speaker talks)", fontsize=9, loc="left")
    stacks = [
        [(r["fused"]["probs"].get(label) or 0.0) if r.get("fused") else 0.0 for r in rows]
        for label in CANONICAL_LABELS
    ]
    label_axes.stackplot(
        times,
        stacks,
        labels=CANONICAL_LABELS,
        colors=[LABEL_COLORS[label] for label in CANONICAL_LABELS],
        alpha=0.9,
    )
    label_axes.set_ylim(0, 1)
    label_axes.set_ylabel("probability")
    label_axes.set_xlabel("time (s)")
    label_axes.set_xlim(0, max(duration, 1.0))
    label_axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    label_axes.set_title("fused label probabilities", fontsize=9, loc="left")
    return _svg(figure)


def _share_figure(shares: dict[str, float]) -> str:
    figure = _figure(4.2, 2.4)
    axes = figure.add_subplot()
    labels = [label for label in CANONICAL_LABELS if label in shares][::-1]
    values = [shares[label] * 100 for label in labels]
    axes.barh(labels, values, color=[LABEL_COLORS[label] for label in labels])
    for y, value in enumerate(values):
        axes.text(value + 1, y, f"{value:.0f}%", va="center", fontsize=8)
    axes.set_xlim(0, 110)
    axes.set_xlabel("% of speech time")
    axes.set_title("share of speech time per label", fontsize=9, loc="left")
    return _svg(figure)


# --- the page ------------------------------------------------------------------------------

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; font-size: 1.2em; }
.caveat { background: #fff6d5; border-left: 4px solid #f2b701; padding: 0.5em 1em; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }
.row { display: flex; gap: 1.5em; align-items: flex-start; flex-wrap: wrap; }
.muted { color: #666; font-size: 0.9em; } svg { max-width: 100%; height: auto; }
"""


def _fmt_time(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def render_html(result: CallResult, summary: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Call report: {e(summary['media'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Call report: {e(summary['media'])}</h1>",
        f"<p class='muted'>{summary['duration_s']:.1f} s, {len(summary['speakers'])} "
        "speaker(s), one per channel. Text from "
        + ("the transcript" if summary["text_from"] else "no transcript")
        + " (speech recognition does not run on calls yet).</p>",
        f"<p class='caveat'>{e(CAVEAT)}</p>",
        "<h2>Who talked when</h2>",
        "<table><tr><th>speaker</th><th>talk time</th><th>share</th><th>mean valence</th>"
        "<th>most of the time</th></tr>",
    ]
    for speaker in summary["speakers"]:
        shares = speaker["label_share"]
        top = max(shares, key=lambda k: shares[k]) if shares else None
        valence = speaker["valence_mean"]
        parts.append(
            f"<tr><td>{e(speaker['name'])}</td>"
            + (
                "<td colspan='4'>silent: not analysed</td></tr>"
                if speaker["silent"]
                else f"<td>{speaker['talk_s']:.1f} s</td><td>{speaker['talk_share']:.0%}</td>"
                f"<td>{'–' if valence is None else f'{valence:.2f}'}</td>"
                f"<td>{e(top) + f' ({shares[top]:.0%})' if top else '–'}</td></tr>"
            )
        )
    parts.append("</table>")
    parts.append(
        f"<p>Both talk at once for {summary['overlap_s']:.1f} s "
        f"({summary['overlap_share']:.0%} of the talk time).</p>"
    )
    parts.append(_talk_figure(result))
    plan = result.plan
    for speaker, figures in zip(plan.speakers, summary["speakers"], strict=True):
        if speaker.silent:
            continue
        rows = result.rows.get(speaker.name, [])
        parts.append(f"<h2>{e(speaker.name)}</h2>")
        parts.append(
            _speaker_figure(rows, speaker.segments, figures["valence_drops"], plan.duration)
        )
        parts.append("<div class='row'><div>")
        parts.append(
            _share_figure(figures["label_share"])
            if figures["label_share"]
            else "<p>No estimate during speech.</p>"
        )
        parts.append("</div><div><h3>Where valence drops most</h3>")
        if figures["valence_drops"]:
            parts.append("<table><tr><th>#</th><th>at</th><th>valence</th><th>fall</th></tr>")
            for number, drop in enumerate(figures["valence_drops"], start=1):
                parts.append(
                    f"<tr><td>{number}</td><td>{_fmt_time(drop['t'])}</td>"
                    f"<td>{drop['valence_from']:.2f} → {drop['valence_to']:.2f} "
                    f"(since {_fmt_time(drop['from_t'])})</td><td>{drop['drop']:.2f}</td></tr>"
                )
            parts.append("</table>")
        else:
            parts.append(f"<p>No fall of {MIN_DROP} or more.</p>")
        parts.append("</div></div>")
    parts.append("<h2>How this was made</h2><ul class='muted'>")
    for modality, model in summary["models"].items():
        parts.append(f"<li>{e(modality)}: {e(model)}</li>")
    for note in summary["notes"]:
        parts.append(f"<li>{e(note)}</li>")
    parts.append(
        "<li>Valence: 0 unpleasant, 1 pleasant (NRC-VAD ratings of the emotion words). A "
        f"drop is the fall from the highest valence of the previous {DROP_WINDOW_S:g} s.</li>"
        "</ul></body></html>"
    )
    return "\n".join(parts)


def write_call_report(
    result: CallResult, folder: Path, models: dict[str, str] | None = None
) -> Path:
    """Write ``report.html`` and ``summary.json`` into ``folder`` (made if missing);
    returns the HTML's path."""
    try:
        import matplotlib  # noqa: F401 - checked here for a clear message
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise EmoappError("the call report needs matplotlib: pip install matplotlib") from error
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EmoappError(f"--report {folder}: cannot create: {error.strerror or error}") from error
    summary = summarize_call(result, models)
    page = folder / "report.html"
    try:
        (folder / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        page.write_text(render_html(result, summary), encoding="utf-8")
    except OSError as error:
        raise EmoappError(f"--report {folder}: cannot write: {error.strerror or error}") from error
    return page
