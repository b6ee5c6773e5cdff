"""The call report (``emoapp analyze CALL --speakers auto|channels|N --report DIR``).

:func:`summarize_call` turns a :class:`~emoapp.calls.analysis.CallResult` into plain
figures (``summary.json``): per speaker the talk time and its share, the share of speech
time per fused label, the mean valence, and the moments where valence drops most (top 3:
the largest fall from the highest valence of the previous :data:`DROP_WINDOW_S` seconds,
at least that far apart); the time both speakers talk at once; every utterance with its
fused label and confidence (its words only when the call was analysed with
``include_text``); and the **moments to listen to** (:func:`moments`): the valence drops,
anger or distress on the customer's side, long overlaps and long silences.

:func:`write_call_report` writes ``report.html`` beside it: one self-contained page (the
figures are SVG drawn by matplotlib and embedded; nothing to fetch), readable without
code: what the page holds, who talked when, the moments, the speakers side by side, and
per speaker the utterances (colour-coded by label) and the timelines. With
``embed_audio`` the recording itself goes into the page (an ``<audio>`` element with a
``data:`` URI) and every time is a link that plays the call from there (a few lines of
inline script); without it, the page has no script and no audio. matplotlib is imported
only when a report is written.

:func:`write_batch_index` writes ``index.html`` over the reports of a batch: one row per
call (duration, talk share and share per label per speaker, moments), sortable by any
column, each linking to that call's report.
"""

from __future__ import annotations

import base64
import html
import io
import json
import mimetypes
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
CUSTOMER_NAMES = ("customer", "caller", "client")
"""A speaker with one of these names is the side watched for anger and distress."""
DISTRESS = ("angry", "sad", "fearful")
DISTRESS_MIN = 0.4
"""An utterance counts as anger or distress when that label's fused probability is at
least this and it is the utterance's label."""
LONG_OVERLAP_S = 1.0
LONG_SILENCE_S = 4.0
TOP_MOMENTS = 12
EMBED_LIMIT_BYTES = 50 * 1024 * 1024
"""A recording larger than this is not put into a page."""
PRIVACY_NOTE = (
    "Made on this computer; nothing from this call was sent anywhere. Treat this file as "
    "personal data about the people on the call, and tell them their call is analysed "
    "(a notice to adapt: resources/disclosure/notice-v1.md in emoapp)."
)
INDEX_PRIVACY_NOTE = (
    "Made on this computer; nothing from these calls was sent anywhere. Treat this file as "
    "personal data about the people on the calls, and tell them their calls are analysed "
    "(a notice to adapt: resources/disclosure/notice-v1.md in emoapp)."
)
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
    if plan.diarization is not None:
        overlaps = [(a, b) for a, b in plan.overlaps]
        overlap = sum(b - a for a, b in overlaps)
    else:
        overlaps = _pairwise_overlaps(active)
    has_text = any(s.entries for s in plan.speakers)
    text_from = None
    if has_text:
        text_from = "speech recognition" if plan.heard_by else "transcript"
    utterances = {name: [_utterance(u) for u in rows] for name, rows in result.utterances.items()}
    summary = {
        "media": plan.media.name,
        "duration_s": round(plan.duration, 3),
        "speakers_by": "diarization" if plan.diarization is not None else "channels",
        "diarization": plan.diarization,
        "speakers": speakers,
        "overlap_s": round(overlap, 3),
        "overlap_share": round(overlap / talk_total, 4) if talk_total else 0.0,
        "models": dict(models or {}),
        "text_from": text_from,
        "words_included": bool(result.include_text and has_text),
        "utterances": utterances,
        "notes": list(plan.warnings),
        "about": CAVEAT,
    }
    summary["customer"] = customer_of([s.name for s in plan.speakers])
    summary["moments"] = moments(summary, overlaps, list(plan.active))
    return summary


def _utterance(row: dict[str, Any]) -> dict[str, Any]:
    fused = row.get("fused") or {}
    out: dict[str, Any] = {
        "t": row["t"],
        "end": row["end"],
        "label": fused.get("label"),
        "confidence": fused.get("confidence"),
        "valence": fused.get("valence"),
        "probs": fused.get("probs", {}),
    }
    if "words" in row:
        out["words"] = row["words"]
    return out


def _pairwise_overlaps(speakers: Sequence[Any]) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []
    for i, a in enumerate(speakers):
        for b in speakers[i + 1 :]:
            for s1, e1 in a.segments:
                for s2, e2 in b.segments:
                    low, high = max(s1, s2), min(e1, e2)
                    if high > low:
                        spans.append((low, high))
    return sorted(spans)


def customer_of(names: Sequence[str]) -> str | None:
    """The speaker named as the customer (customer, caller or client), if any."""
    return next((n for n in names if n.casefold() in CUSTOMER_NAMES), None)


def _silences(speakers: Sequence[Any], duration: float) -> list[tuple[float, float]]:
    """Stretches of at least :data:`LONG_SILENCE_S` between the first and last speech
    where nobody speaks."""
    spans = sorted(seg for s in speakers for seg in s.segments)
    gaps: list[tuple[float, float]] = []
    reach = None
    for start, end in spans:
        if reach is not None and start - reach >= LONG_SILENCE_S:
            gaps.append((reach, start))
        reach = end if reach is None else max(reach, end)
    return gaps


def moments(
    summary: dict[str, Any],
    overlaps: Sequence[tuple[float, float]],
    speakers: Sequence[Any] = (),
) -> list[dict[str, Any]]:
    """The moments to listen to, in time order (at most :data:`TOP_MOMENTS`, the
    strongest of each kind kept first): valence drops (per speaker), anger or distress
    on the customer's side (every speaker's when none is named the customer), overlaps
    of :data:`LONG_OVERLAP_S` or more, silences of :data:`LONG_SILENCE_S` or more."""
    found: list[dict[str, Any]] = []
    for speaker in summary["speakers"]:
        for drop in speaker["valence_drops"]:
            found.append(
                {
                    "t": drop["from_t"],
                    "end": drop["t"],
                    "kind": "valence drop",
                    "speaker": speaker["name"],
                    "what": f"valence {drop['valence_from']:.2f} → {drop['valence_to']:.2f}",
                    "strength": drop["drop"],
                }
            )
    customer = summary.get("customer")
    watched = [customer] if customer else [s["name"] for s in summary["speakers"]]
    for name in watched:
        for utterance in summary["utterances"].get(name, []):
            label = utterance["label"]
            p = (utterance["probs"] or {}).get(label or "", 0.0) or 0.0
            if label in DISTRESS and p >= DISTRESS_MIN:
                found.append(
                    {
                        "t": utterance["t"],
                        "end": utterance["end"],
                        "kind": "anger" if label == "angry" else "distress",
                        "speaker": name,
                        "what": f"{label} ({p:.0%})",
                        "strength": p,
                    }
                )
    for start, end in overlaps:
        if end - start >= LONG_OVERLAP_S:
            found.append(
                {
                    "t": round(start, 3),
                    "end": round(end, 3),
                    "kind": "overlap",
                    "speaker": None,
                    "what": f"both talk for {end - start:.1f} s",
                    "strength": end - start,
                }
            )
    for start, end in _silences(speakers, summary["duration_s"]):
        found.append(
            {
                "t": round(start, 3),
                "end": round(end, 3),
                "kind": "silence",
                "speaker": None,
                "what": f"nobody talks for {end - start:.1f} s",
                "strength": end - start,
            }
        )
    kept = sorted(found, key=lambda m: -float(m["strength"]))[:TOP_MOMENTS]
    for moment in kept:
        moment["strength"] = round(float(moment["strength"]), 4)
    return sorted(kept, key=lambda m: (m["t"], m["kind"]))


def contents(summary: dict[str, Any], embed_audio: bool) -> list[str]:
    """What a report holds, in words (said at its top)."""
    held = ["estimates of the emotion each speaker's voice (and words) display, over time"]
    source = {"transcript": "the transcript"}.get(summary.get("text_from") or "")
    source = source or summary.get("text_from")
    if summary.get("words_included"):
        held.append(f"the words said (from {source})")
    elif source:
        held.append(
            f"no words: text from {source} was analysed but is left out "
            "(add --include-text to show it)"
        )
    held.append("the recording itself (--embed-audio)" if embed_audio else "no audio")
    return held


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
.contents { background: #eef5ff; border-left: 4px solid #3969ac; padding: 0.5em 1em; }
.chip { display: inline-block; padding: 0 0.5em; border-radius: 0.6em; color: #fff;
        font-size: 0.85em; text-shadow: 0 0 2px #0006; }
a.play { text-decoration: none; white-space: nowrap; }
audio { width: 100%; margin: 0.5em 0; }
table.utterances td:last-child { max-width: 38em; }
th.sortable { cursor: pointer; user-select: none; }
th.sortable:after { content: " ⇅"; color: #aaa; }
"""


def _fmt_time(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _at(seconds: float, playable: bool) -> str:
    """A time; with the audio in the page, a link that plays the call from there."""
    text = _fmt_time(seconds)
    if not playable:
        return text
    return f"<a href='#' class='play' data-t='{seconds:.2f}' title='play from here'>▶ {text}</a>"


_PLAYER = """
<script>
document.addEventListener('click', function (event) {
  var link = event.target.closest('a.play');
  if (!link) return;
  event.preventDefault();
  var audio = document.getElementById('call-audio');
  audio.currentTime = parseFloat(link.dataset.t);
  audio.play();
});
</script>
"""


def _audio_element(path: Any) -> str:
    data = path.read_bytes()
    mime = mimetypes.guess_type(path.name)[0] or "audio/wav"
    if mime.startswith("video/"):
        mime = "audio/" + mime.split("/", 1)[1]
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f"<audio id='call-audio' controls preload='metadata' src='data:{mime};base64,"
        f"{encoded}'></audio>"
    )


def _chip(label: str | None) -> str:
    if not label:
        return "<span class='chip' style='background:#eee'>–</span>"
    return (
        f"<span class='chip' style='background:{LABEL_COLORS.get(label, '#ccc')}'>"
        f"{html.escape(label)}</span>"
    )


def _comparison(summary: dict[str, Any]) -> list[str]:
    e = html.escape
    speakers = [s for s in summary["speakers"] if not s["silent"]]
    customer = summary.get("customer")
    head = "".join(
        f"<th>{e(s['name'])}"
        f"{' (customer)' if s['name'] == customer and s['name'].casefold() != 'customer' else ''}"
        "</th>"
        for s in speakers
    )
    rows = [f"<table class='compare'><tr><th></th>{head}</tr>"]

    def line(title: str, cells: list[str]) -> None:
        rows.append(f"<tr><th>{title}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")

    line("talk time", [f"{s['talk_s']:.1f} s ({s['talk_share']:.0%})" for s in speakers])
    line("utterances", [str(len(summary["utterances"].get(s["name"], []))) for s in speakers])
    line(
        "mean valence",
        ["–" if s["valence_mean"] is None else f"{s['valence_mean']:.2f}" for s in speakers],
    )
    for label in ("neutral", "happy", "angry", "sad", "fearful"):
        line(
            f"{_chip(label)} share",
            [f"{s['label_share'].get(label, 0.0):.0%}" for s in speakers],
        )
    counts = Counter(m["speaker"] for m in summary["moments"] if m["speaker"])
    line("moments", [str(counts.get(s["name"], 0)) for s in speakers])
    rows.append("</table>")
    return rows


def render_html(result: CallResult, summary: dict[str, Any], embed_audio: bool = False) -> str:
    e = html.escape
    playable = embed_audio
    found_by = (
        "found by diarization (who spoke when, from one channel)"
        if summary.get("speakers_by") == "diarization"
        else "one per channel"
    )
    text_from = {
        "transcript": "the transcript",
        "speech recognition": "speech recognition",
        None: "nowhere (no transcript, no speech recognition)",
    }[summary["text_from"]]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Call report: {e(summary['media'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Call report: {e(summary['media'])}</h1>",
        f"<p class='muted'>{summary['duration_s']:.1f} s, {len(summary['speakers'])} "
        f"speaker(s), {found_by}. Text from {text_from}.</p>",
        "<p class='contents'><b>This page holds:</b> "
        + "; ".join(e(c) for c in contents(summary, embed_audio))
        + f". {e(PRIVACY_NOTE)}</p>",
        f"<p class='caveat'>{e(CAVEAT)}</p>",
    ]
    if embed_audio:
        parts.append(_audio_element(result.plan.media))
    parts.append("<h2>Moments to listen to</h2>")
    if summary["moments"]:
        if not summary.get("customer"):
            parts.append(
                "<p class='muted'>No speaker is named customer: anger and distress are "
                "shown for everyone (name the sides with --speaker-names agent,customer)."
                "</p>"
            )
        parts.append(
            "<table class='moments'><tr><th>at</th><th>until</th><th>what</th>"
            "<th>who</th><th></th></tr>"
        )
        for moment in summary["moments"]:
            parts.append(
                f"<tr><td>{_at(moment['t'], playable)}</td><td>{_fmt_time(moment['end'])}</td>"
                f"<td>{e(moment['kind'])}</td><td>{e(moment['speaker'] or 'both')}</td>"
                f"<td>{e(moment['what'])}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>Nothing stands out.</p>")
    parts.append("<h2>Side by side</h2>")
    parts.extend(_comparison(summary))
    parts += [
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
        utterances = summary["utterances"].get(speaker.name, [])
        if utterances:
            parts.append(
                "<details open><summary>Utterances: fused label and confidence"
                + (" beside the words" if summary.get("words_included") else "")
                + "</summary><table class='utterances'><tr><th>at</th><th>label</th>"
                "<th>confidence</th><th>valence</th>"
                + ("<th>words</th>" if summary.get("words_included") else "")
                + "</tr>"
            )
            for utterance in utterances:
                confidence = utterance["confidence"]
                valence = utterance["valence"]
                parts.append(
                    f"<tr><td>{_at(utterance['t'], playable)}</td>"
                    f"<td>{_chip(utterance['label'])}</td>"
                    f"<td>{'–' if confidence is None else f'{confidence:.0%}'}</td>"
                    f"<td>{'–' if valence is None else f'{valence:.2f}'}</td>"
                    + (
                        f"<td>{e(utterance.get('words') or '')}</td>"
                        if summary.get("words_included")
                        else ""
                    )
                    + "</tr>"
                )
            parts.append("</table></details>")
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
        f"drop is the fall from the highest valence of the previous {DROP_WINDOW_S:g} s. "
        f"Anger or distress: an utterance labelled angry, sad or fearful at "
        f"{DISTRESS_MIN:.0%} or more. Long: overlaps of {LONG_OVERLAP_S:g} s, silences of "
        f"{LONG_SILENCE_S:g} s or more.</li>"
        + (f"<li>Speakers: {e(summary['diarization'])}.</li>" if summary.get("diarization") else "")
        + "</ul>"
        + (_PLAYER if playable else "")
        + "</body></html>"
    )
    return "\n".join(parts)


def write_call_report(
    result: CallResult,
    folder: Path,
    models: dict[str, str] | None = None,
    embed_audio: bool = False,
) -> Path:
    """Write ``report.html`` and ``summary.json`` into ``folder`` (made if missing);
    returns the HTML's path. ``embed_audio`` puts the recording into the page."""
    try:
        import matplotlib  # noqa: F401 - checked here for a clear message
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise EmoappError("the call report needs matplotlib: pip install matplotlib") from error
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EmoappError(f"--report {folder}: cannot create: {error.strerror or error}") from error
    if embed_audio:
        size = result.plan.media.stat().st_size
        if size > EMBED_LIMIT_BYTES:
            raise EmoappError(
                f"--embed-audio: {result.plan.media.name} is {size / 2**20:.0f} MiB; a page "
                f"holds at most {EMBED_LIMIT_BYTES // 2**20} MiB of audio"
            )
    summary = summarize_call(result, models)
    summary["audio_included"] = embed_audio
    page = folder / "report.html"
    try:
        (folder / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        page.write_text(render_html(result, summary, embed_audio), encoding="utf-8")
    except OSError as error:
        raise EmoappError(f"--report {folder}: cannot write: {error.strerror or error}") from error
    return page


# --- the batch index -----------------------------------------------------------------------

_SORTER = """
<script>
document.querySelectorAll('table.index th.sortable').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var up = th.dataset.order !== 'up';
    table.querySelectorAll('th').forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = up ? 'up' : 'down';
    var rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
</script>
"""


def index_rows(reports: Sequence[tuple[str, Path]]) -> list[dict[str, Any]]:
    """One row per call from its ``summary.json`` (id, report link relative to the index
    folder, duration, per speaker the talk share and share per label, moments)."""
    rows = []
    for item_id, summary_path in reports:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        rows.append(
            {
                "id": item_id,
                "report": summary_path.with_name("report.html"),
                "media": summary["media"],
                "duration_s": summary["duration_s"],
                "speakers_by": summary.get("speakers_by", "channels"),
                "speakers": [
                    {
                        "name": s["name"],
                        "talk_share": s["talk_share"],
                        "label_share": s["label_share"],
                        "valence_mean": s["valence_mean"],
                    }
                    for s in summary["speakers"]
                    if not s["silent"]
                ],
                "moments": len(summary.get("moments", [])),
                "words": bool(summary.get("words_included")),
                "audio": bool(summary.get("audio_included")),
            }
        )
    return rows


def render_index(rows: Sequence[dict[str, Any]], folder: Path) -> str:
    """The batch index page (see :func:`write_batch_index`)."""
    import os

    e = html.escape
    width = max((len(r["speakers"]) for r in rows), default=0)
    words = any(r["words"] for r in rows)
    audio = any(r["audio"] for r in rows)
    held = [
        "for each call: its duration, and per speaker the share of talk time and of "
        "speech time per estimated label, the mean valence and the count of moments to "
        "listen to"
    ]
    held.append("the call reports it links to hold the words said" if words else "no words")
    held.append("some call reports hold the recording" if audio else "no audio")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Calls: {len(rows)}</title><style>{_STYLE}"
        ".index td, .index th { font-size: 0.9em; } .bar { display: flex; height: 0.9em; "
        "width: 9em; border: 1px solid #ccc; } .bar span { display: block; height: 100%; }"
        "</style></head><body>",
        f"<h1>Calls: {len(rows)}</h1>",
        "<p class='contents'><b>This page holds:</b> "
        + "; ".join(e(h) for h in held)
        + f". {e(INDEX_PRIVACY_NOTE)}</p>",
        f"<p class='caveat'>{e(CAVEAT)}</p>",
        "<p class='muted'>Click a column's title to sort by it; a call's name opens its "
        "report. Label colours: " + " ".join(_chip(label) for label in CANONICAL_LABELS) + "</p>",
        "<table class='index'><thead><tr><th class='sortable'>call</th>"
        "<th class='sortable'>duration</th><th class='sortable'>moments</th>",
    ]
    for i in range(width):
        parts.append(
            f"<th class='sortable'>speaker {i + 1}</th><th class='sortable'>talk</th>"
            f"<th class='sortable'>valence</th><th class='sortable'>negative</th>"
            f"<th>labels</th>"
        )
    parts.append("</tr></thead><tbody>")
    for row in rows:
        link = os.path.relpath(row["report"], folder)
        cells = [
            f"<td data-v='{e(row['id'])}'><a href='{e(link)}'>{e(row['id'])}</a></td>",
            f"<td data-v='{row['duration_s']}'>{_fmt_time(row['duration_s'])}</td>",
            f"<td data-v='{row['moments']}'>{row['moments']}</td>",
        ]
        for i in range(width):
            if i >= len(row["speakers"]):
                cells.append("<td data-v=''></td>" * 4 + "<td></td>")
                continue
            speaker = row["speakers"][i]
            shares = speaker["label_share"]
            negative = sum(shares.get(k, 0.0) for k in ("angry", "sad", "fearful", "disgusted"))
            valence = speaker["valence_mean"]
            bar = "".join(
                f"<span title='{label} {share:.0%}' style='width:{share * 100:.1f}%;"
                f"background:{LABEL_COLORS[label]}'></span>"
                for label, share in shares.items()
            )
            cells += [
                f"<td data-v='{e(speaker['name'])}'>{e(speaker['name'])}</td>",
                f"<td data-v='{speaker['talk_share']}'>{speaker['talk_share']:.0%}</td>",
                f"<td data-v='{'' if valence is None else valence}'>"
                f"{'–' if valence is None else f'{valence:.2f}'}</td>",
                f"<td data-v='{negative:.4f}'>{negative:.0%}</td>",
                f"<td><div class='bar'>{bar}</div></td>",
            ]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    parts.append(
        "<p class='muted'>Negative: the share of speech time labelled angry, sad, fearful or "
        "disgusted. Valence: 0 unpleasant, 1 pleasant.</p>"
    )
    parts.append(_SORTER + "</body></html>")
    return "\n".join(parts)


def write_batch_index(folder: Path, reports: Sequence[tuple[str, Path]]) -> Path:
    """Write ``folder/index.html`` over the calls whose ``summary.json`` files are given
    (id, path), sorted by id; returns its path."""
    rows = sorted(index_rows(reports), key=lambda r: r["id"])
    page = folder / "index.html"
    try:
        page.write_text(render_index(rows, folder), encoding="utf-8")
    except OSError as error:
        raise EmoappError(f"{page}: cannot write: {error.strerror or error}") from error
    return page
