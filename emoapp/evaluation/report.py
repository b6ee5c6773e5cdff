"""The evaluation report: ``README.md`` (tables and figures), ``metrics.json`` (every
figure, for machines) and ``plots/*.png`` in the report folder, and a short table for
stdout."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX
from emoapp.evaluation import plots
from emoapp.evaluation.metrics import ClassificationReport, Interval, macro_f1
from emoapp.evaluation.runner import EvaluationResult
from emoapp.evaluation.scoring import SystemScore

README = "README.md"
METRICS = "metrics.json"
_FEW_FIT_ITEMS = 100
"""Fits on fewer items than this are flagged as rough."""
_MAX_GROUP_BARS = 24
_MIN_GROUP_N = 10
"""Groups smaller than this are listed but left out of the best-worst gap."""


def _f(value: float, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.1f}%"


def _ci(interval: Interval | None) -> str:
    if interval is None or math.isnan(interval.low):
        return ""
    return f" [{interval.low:.3f}, {interval.high:.3f}]"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _system_label(score: SystemScore) -> str:
    return f"{score.system.name} (fused)" if score.system.fused else score.system.name


# --- stdout ---------------------------------------------------------------------------


def summary_table(result: EvaluationResult) -> str:
    """A short fixed-width table: one row per system."""
    rows = [("system", "n", "coverage", "accuracy", "macro-F1", "weighted-F1", "ECE")]
    for s in result.scores:
        r = s.report
        rows.append(
            (
                _system_label(s),
                str(r.n),
                _pct(s.coverage),
                _f(r.accuracy),
                _f(r.macro_f1),
                _f(r.weighted_f1),
                _f(r.ece),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    if result.fit is not None:
        lines.append("")
        lines.append("after --fit, on the held-out part (before -> after):")
        for b, a in zip(result.fit.before, result.fit.after, strict=True):
            lines.append(
                f"  {_system_label(b)}: "
                f"accuracy {_f(b.report.accuracy)} -> {_f(a.report.accuracy)}, "
                f"macro-F1 {_f(b.report.macro_f1)} -> {_f(a.report.macro_f1)}, "
                f"ECE {_f(b.report.ece)} -> {_f(a.report.ece)}"
            )
    return "\n".join(lines)


# --- JSON -----------------------------------------------------------------------------


def _interval_json(interval: Interval | None) -> list[float] | None:
    return None if interval is None else [interval.low, interval.high]


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _report_json(r: ClassificationReport) -> dict[str, Any]:
    return {
        "n": r.n,
        "accuracy": _nan_to_none(r.accuracy),
        "accuracy_ci95": _interval_json(r.accuracy_ci),
        "macro_f1": _nan_to_none(r.macro_f1),
        "macro_f1_ci95": _interval_json(r.macro_f1_ci),
        "weighted_f1": _nan_to_none(r.weighted_f1),
        "ece": _nan_to_none(r.ece),
        "nll": _nan_to_none(r.nll),
        "recall": {
            label: _nan_to_none(float(v))
            for label, v in zip(CANONICAL_LABELS, r.recall, strict=True)
        },
        "confusion": r.confusion.tolist(),
    }


def _score_json(s: SystemScore) -> dict[str, Any]:
    out: dict[str, Any] = {
        "system": s.system.name,
        "modalities": [m.value for m in s.system.modalities],
        "items": s.items,
        "with_input": s.with_input,
        "coverage": _nan_to_none(s.coverage),
        **_report_json(s.report),
    }
    if s.groups is not None:
        gap = s.groups.accuracy_gap(_MIN_GROUP_N)
        out["groups"] = {g: _report_json(r) for g, r in s.groups.groups.items()}
        out["accuracy_gap"] = (
            None if gap is None else {"best": gap[0], "worst": gap[1], "gap": gap[2]}
        )
    return out


def metrics_json(result: EvaluationResult) -> dict[str, Any]:
    ds = result.dataset
    out: dict[str, Any] = {
        "dataset": {
            "name": ds.name,
            "format": ds.format,
            "path": str(ds.root),
            "items": len(ds.items),
            "records": ds.records,
            "skipped": dict(ds.skipped_reasons()),
            "missing": dict(ds.missing),
            "labels": dict(ds.label_counts()),
            "group_by": ds.group_by,
            "groups": dict(ds.group_counts()),
        },
        "models": {
            m.value: {"model": info.model_id, "baseline": info.baseline, "revision": info.revision}
            for m, info in result.models.items()
        },
        "coverage": {
            m.value: {
                "items": c.items,
                "with_input": c.with_input,
                "predicted": c.predicted,
                "reasons": dict(c.reasons),
            }
            for m, c in result.run.coverage.items()
        },
        "fusion": {
            "rule": result.options.fusion.rule,
            "reliability": {m.value: v for m, v in result.options.fusion.reliability.items()},
            "confidence_power": result.options.fusion.confidence_power,
            "temperature": dict(result.options.temperatures),
            "source": result.options.fusion_source or None,
        },
        "systems": [_score_json(s) for s in result.scores],
        "elapsed_s": result.elapsed_s,
        "cache_hits": result.cache_hits,
    }
    if result.common is not None:
        out["common"] = {
            "items": result.common_items,
            "systems": [_score_json(s) for s in result.common],
        }
    if result.fit is not None:
        fit = result.fit
        out["fit"] = {
            "fit_items": fit.result.fit_items,
            "held_out_items": fit.result.held_out_items,
            "temperature": {k: t.temperature for k, t in fit.result.temperatures.items()},
            "reliability": {m.value: v for m, v in fit.result.reliability.items()},
            "reliability_fitted": fit.result.reliability_fitted,
            "profile": None if fit.profile_path is None else str(fit.profile_path),
            "held_out_before": [_score_json(s) for s in fit.before],
            "held_out_after": [_score_json(s) for s in fit.after],
        }
    return out


# --- Markdown -------------------------------------------------------------------------


def _scores_table(scores: Sequence[SystemScore], with_coverage: bool = True) -> list[str]:
    header = ["system", "n"]
    if with_coverage:
        header.append("coverage")
    header += ["accuracy [95% CI]", "macro-F1 [95% CI]", "weighted F1", "ECE", "NLL"]
    rows = []
    for s in scores:
        r = s.report
        row = [_system_label(s), str(r.n)]
        if with_coverage:
            row.append(_pct(s.coverage))
        row += [
            _f(r.accuracy) + _ci(r.accuracy_ci),
            _f(r.macro_f1) + _ci(r.macro_f1_ci),
            _f(r.weighted_f1),
            _f(r.ece),
            _f(r.nll),
        ]
        rows.append(row)
    return _table(header, rows)


def _recall_table(scores: Sequence[SystemScore], present: Sequence[str]) -> list[str]:
    index = {label: i for i, label in enumerate(CANONICAL_LABELS)}
    rows = [
        [_system_label(s), *(_f(float(s.report.recall[index[label]]), 2) for label in present)]
        for s in scores
    ]
    return _table(["system", *present], rows)


def _groups_section(result: EvaluationResult, figures: Path, rel: str) -> list[str]:
    with_groups = [s for s in result.scores if s.groups is not None]
    if not with_groups:
        return []
    column = result.dataset.group_by
    reports = {s.system.name: s.groups.groups for s in with_groups if s.groups is not None}
    names = sorted({g for groups in reports.values() for g in groups})
    lines = [
        f"## Per group ({column})",
        "",
        "Accuracy / macro-F1 (n) of each system per group; the last rows give the gap "
        f"between the best and the worst group among groups of at least {_MIN_GROUP_N} "
        "items.",
        "",
    ]
    rows = []
    for g in names:
        cells = []
        for s in with_groups:
            r = reports[s.system.name].get(g)
            cells.append("–" if r is None else f"{_f(r.accuracy)} / {_f(r.macro_f1)} ({r.n})")
        rows.append([g, *cells])
    for what in ("accuracy", "macro-F1"):
        cells = []
        for s in with_groups:
            assert s.groups is not None
            gap = (
                s.groups.accuracy_gap(_MIN_GROUP_N)
                if what == "accuracy"
                else s.groups.macro_f1_gap(_MIN_GROUP_N)
            )
            cells.append("–" if gap is None else f"{gap[2]:.3f} ({gap[0]} vs {gap[1]})")
        rows.append([f"**gap, {what}**", *cells])
    lines += _table([column or "group", *(_system_label(s) for s in with_groups)], rows)
    lines.append("")
    if len(names) > _MAX_GROUP_BARS:
        lines += [f"({len(names)} groups: too many to plot; every figure is in metrics.json.)", ""]
        return lines
    for s in with_groups:
        groups = reports[s.system.name]
        png = plots.bars_png(
            figures / f"groups-{_slug(s.system.name)}.png",
            list(groups),
            [r.accuracy for r in groups.values()],
            f"{s.system.name}: accuracy by {column}",
            [r.accuracy_ci for r in groups.values()],
            [r.n for r in groups.values()],
        )
        lines.append(f"![{s.system.name} by {column}]({rel}/{png.name})")
    lines.append("")
    return lines


def _coverage_section(result: EvaluationResult) -> list[str]:
    rows = []
    for m, c in result.run.coverage.items():
        reasons = "; ".join(f"{r} ({n})" for r, n in c.reasons.most_common(4)) or "–"
        rows.append(
            [m.value, str(c.items), str(c.with_input), str(c.predicted), _pct(c.coverage), reasons]
        )
    lines = ["## Coverage", ""]
    lines += _table(
        ["modality", "items", "with input", "predicted", "coverage", "no prediction: why (n)"], rows
    )
    lines += [
        "",
        "An item without a prediction for a modality (no face found, no speech, no file) is "
        "not counted as wrong: that modality abstains, and the scores below are over the "
        "items each system predicted.",
        "",
    ]
    return lines


def _models_section(result: EvaluationResult) -> list[str]:
    rows = []
    for m, info in result.models.items():
        mask = result.run.masks.get(m)
        cannot = (
            ", ".join(label for label, ok in zip(CANONICAL_LABELS, mask, strict=True) if not ok)
            if mask is not None
            else "?"
        )
        rows.append(
            [
                m.value,
                f"`{info.model_id}`",
                "yes" if info.baseline else "no",
                info.revision or "–",
                cannot or "–",
            ]
        )
    lines = ["## Models", ""]
    lines += _table(["modality", "model", "baseline", "revision", "cannot express"], rows)
    lines += [
        "",
        "A model has no way to answer a label it cannot express: items with such a gold "
        "label count against it (and its fusion partners can make up for it).",
        "",
    ]
    for m, why in result.skipped_modalities.items():
        lines.append(f"- {m.value} not evaluated: {why}")
    if result.skipped_modalities:
        lines.append("")
    cfg = result.options.fusion
    weights = ", ".join(f"{m.value} {v:g}" for m, v in cfg.reliability.items())
    source = f" (from {result.options.fusion_source})" if result.options.fusion_source else ""
    lines += [
        f"Fusion{source}: rule `{cfg.rule}`, reliability {weights}, confidence power "
        f"{cfg.confidence_power:g}; every modality's prediction for an item is fused at the "
        "same instant (no time decay).",
    ]
    if result.options.temperatures:
        lines.append(
            "Temperatures applied: "
            + ", ".join(f"`{k}` {v:g}" for k, v in sorted(result.options.temperatures.items()))
            + "."
        )
    lines.append("")
    return lines


def _dataset_section(result: EvaluationResult) -> list[str]:
    ds = result.dataset
    labels = ds.label_counts()
    lines = [
        "## Dataset",
        "",
        f"- path: `{ds.root}` (format `{ds.format}`)",
        f"- items evaluated: {len(ds.items)}"
        + (f" of {ds.records}" if ds.records != len(ds.items) else ""),
        "- gold labels: "
        + ", ".join(f"{label} {labels[label]}" for label in CANONICAL_LABELS if labels[label]),
    ]
    if ds.group_by:
        groups = ds.group_counts()
        lines.append(
            f"- groups ({ds.group_by}): " + ", ".join(f"{g} {n}" for g, n in sorted(groups.items()))
        )
    skipped = ds.skipped_reasons()
    if skipped:
        lines.append(f"- records skipped: {sum(skipped.values())}")
        lines += [f"  - {reason}: {n}" for reason, n in skipped.most_common()]
    if ds.missing:
        lines.append("- parts missing (the rest of these items is evaluated):")
        lines += [f"  - {what}: {n}" for what, n in ds.missing.most_common()]
    lines += [f"- {note}" for note in ds.notes]
    lines.append("")
    return lines


def _fit_section(result: EvaluationResult) -> list[str]:
    fit = result.fit
    if fit is None:
        return []
    r = fit.result
    lines = [
        "## Fitted calibration and fusion (`--fit`)",
        "",
        f"Fitted on {r.fit_items} items (seeded split, stratified by label); compared on the "
        f"other {r.held_out_items} (held out).",
        "",
    ]
    rows = [
        [f"`{t.model_id}`", f"{t.temperature:.3f}", str(t.units), _f(t.nll_before), _f(t.nll_after)]
        for t in r.temperatures.values()
    ]
    lines += _table(["model", "temperature", "units", "NLL at T = 1", "NLL at T"], rows)
    lines.append("")
    if r.reliability_fitted:
        lines.append(
            "Reliability: "
            + ", ".join(f"{m.value} {v:g}" for m, v in r.reliability.items())
            + f" (fused log-likelihood on the fit part {r.log_likelihood_before:.3f} -> "
            f"{r.log_likelihood_after:.3f})"
        )
    else:
        lines.append("Reliability: not fitted (one modality: nothing to weigh).")
    if r.fit_items < _FEW_FIT_ITEMS:
        lines += [
            "",
            f"**Only {r.fit_items} items were used for fitting: treat these values as "
            "rough; fit on a few hundred items or more before relying on them.**",
        ]
    lines += ["", "Held-out part, before -> after:", ""]
    rows = []
    for b, a in zip(fit.before, fit.after, strict=True):
        rows.append(
            [
                _system_label(b),
                str(b.report.n),
                f"{_f(b.report.accuracy)} -> {_f(a.report.accuracy)}",
                f"{_f(b.report.macro_f1)} -> {_f(a.report.macro_f1)}",
                f"{_f(b.report.ece)} -> {_f(a.report.ece)}",
                f"{_f(b.report.nll)} -> {_f(a.report.nll)}",
            ]
        )
    lines += _table(["system", "n", "accuracy", "macro-F1", "ECE", "NLL"], rows)
    lines.append("")
    lines.append(
        "Temperature does not change a single model's top label (so its accuracy), only its "
        "confidence; with several modalities it changes how much each one weighs in fusion."
    )
    if fit.profile_path is not None:
        lines += [
            "",
            f"Profile written to `{fit.profile_path}`; use it with "
            f"`emoapp --profiles-file {fit.profile_path} --profile NAME`:",
            "",
            "```toml",
            fit.profile_text.rstrip(),
            "```",
        ]
    lines.append("")
    return lines


def _majority_line(result: EvaluationResult) -> str:
    """A reference point: always answering the most frequent gold label."""
    counts = result.dataset.label_counts()
    label, top = counts.most_common(1)[0]
    n = sum(counts.values())
    gold = np.array([LABEL_INDEX[item.label] for item in result.dataset.items])
    f1 = macro_f1(gold, np.full(len(gold), LABEL_INDEX[label]))
    return (
        f"For reference, always answering the most frequent label ({label}) scores accuracy "
        f"{top / n:.3f} and macro-F1 {f1:.3f} on all {n} items. Coverage is the share of all "
        "items a system gave an answer for."
    )


def write_report(result: EvaluationResult, directory: Path, command: str = "") -> Path:
    """Write README.md, metrics.json and the figures into ``directory``; returns the
    README's path."""
    directory.mkdir(parents=True, exist_ok=True)
    figures = directory / "plots"
    rel = "plots"
    ds = result.dataset
    lines = [
        f"# Evaluation: {ds.name}",
        "",
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{result.elapsed_s:.1f} s ({result.cache_hits} predictions from the cache)."
        + (f"  \n`{command}`" if command else ""),
        "",
        "What is measured is how well each model recognises the *labelled, displayed* "
        "expression of this dataset, not what people feel. Intervals are 95% percentile "
        f"bootstrap intervals ({result.options.bootstrap} resamples, seed "
        f"{result.options.seed}). Macro-F1 averages over the labels present in the gold "
        "labels; ECE uses 15 equal-width bins of top-label confidence.",
        "",
    ]
    lines += _dataset_section(result)
    lines += _models_section(result)
    lines += _coverage_section(result)
    lines += ["## Results", ""]
    lines += _scores_table(result.scores)
    lines += ["", _majority_line(result), ""]
    png = plots.bars_png(
        figures / "systems-macro-f1.png",
        [s.system.name for s in result.scores],
        [s.report.macro_f1 for s in result.scores],
        "macro-F1 by system",
        [s.report.macro_f1_ci for s in result.scores],
        [s.report.n for s in result.scores],
    )
    lines += [f"![macro-F1 by system]({rel}/{png.name})", ""]
    if result.common is not None:
        lines += [
            f"### On the {result.common_items} items every modality predicted",
            "",
            "The fair comparison of single modalities against their fusion:",
            "",
        ]
        lines += _scores_table(result.common, with_coverage=False)
        lines.append("")
    present = [label for label in CANONICAL_LABELS if ds.label_counts()[label]]
    lines += ["### Recall per class", ""]
    lines += _recall_table(result.scores, present)
    lines.append("")
    for s in result.scores:
        if s.report.n == 0:
            continue
        slug = _slug(s.system.name)
        cm = plots.confusion_png(
            figures / f"confusion-{slug}.png",
            s.report.confusion,
            CANONICAL_LABELS,
            f"{s.system.name}: confusion (n={s.report.n})",
        )
        rd = plots.reliability_png(
            figures / f"reliability-{slug}.png", s.report.reliability, s.report.ece, s.system.name
        )
        lines += [
            f"### {_system_label(s)}",
            "",
            f"![confusion matrix, {s.system.name}]({rel}/{cm.name}) "
            f"![reliability diagram, {s.system.name}]({rel}/{rd.name})",
            "",
        ]
    lines += _groups_section(result, figures, rel)
    lines += _fit_section(result)
    readme = directory / README
    readme.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    (directory / METRICS).write_text(
        json.dumps(metrics_json(result), indent=2, default=_json_default), encoding="utf-8"
    )
    return readme


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Modality):
        return value.value
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# --- paired evaluation ------------------------------------------------------------------


def write_paired_report(
    result: Any,
    models: dict[Modality, str],
    directory: Path | None,
    command: str = "",
    fusion: str = "",
) -> str:
    """The paired evaluation's table (returned, for stdout) and, with ``directory``, its
    README.md and metrics.json there. ``fusion`` says in words which fusion settings
    (priors and where they came from) the fused rows used."""
    from emoapp.evaluation.paired import INDEPENDENCE_NOTE

    rows = []
    for s in result.scores:
        r = s.report
        rows.append(
            [
                _system_label(s),
                str(r.n),
                _f(r.accuracy) + _ci(r.accuracy_ci),
                _f(r.macro_f1) + _ci(r.macro_f1_ci),
                _f(r.ece),
            ]
        )
    table = _table(
        ["system", "pairs scored", "accuracy [95% CI]", "macro-F1 [95% CI]", "ECE"], rows
    )
    gain = result.gain
    gain_line = ""
    if gain is not None:
        gain_line = (
            f"Fused ({gain.fused}) minus the best single modality ({gain.best_single}), "
            f"macro-F1: {gain.difference:+.3f}{_ci(gain.interval)} (paired bootstrap over "
            "the same resampled tuples)."
        )
    over = getattr(result, "gain_over_subsets", None)
    if over is not None:
        gain_line += (
            f"\n\nFused ({over.fused}) minus the best fusion of fewer modalities "
            f"({over.best_single}), macro-F1: {over.difference:+.3f}{_ci(over.interval)}."
        )
    lines = [
        "# Paired evaluation",
        "",
        f"{result.pairs} label-matched tuples over {', '.join(result.labels)} "
        "(each label drawn with equal chance).",
        "",
        "Sets: " + "; ".join(f"{m.value}: {name}" for m, name in result.sets.items()),
        "",
        "Models: " + "; ".join(f"{m.value}: {mid}" for m, mid in models.items()),
        "",
        *([fusion, ""] if fusion else []),
        *table,
        "",
    ]
    if gain_line:
        lines += [gain_line, ""]
    lines += [f"**{INDEPENDENCE_NOTE}**", ""]
    if command:
        lines += ["Reproduce with:", "", "```", command, "```", ""]
    text = "\n".join(lines)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "README.md").write_text(text, encoding="utf-8")
        payload = {
            "kind": "paired",
            "pairs": result.pairs,
            "labels": result.labels,
            "sets": {m.value: name for m, name in result.sets.items()},
            "models": {m.value: mid for m, mid in models.items()},
            "fusion": fusion,
            "systems": [_score_json(s) for s in result.scores],
            "gain": None
            if gain is None
            else {
                "fused": gain.fused,
                "best_single": gain.best_single,
                "macro_f1_difference": gain.difference,
                "ci95": _interval_json(gain.interval),
            },
            "gain_over_subsets": None
            if over is None
            else {
                "fused": over.fused,
                "best_subset": over.best_single,
                "macro_f1_difference": over.difference,
                "ci95": _interval_json(over.interval),
            },
            "note": INDEPENDENCE_NOTE,
            "command": command,
        }
        (directory / "metrics.json").write_text(
            json.dumps(payload, indent=2, default=_json_default), encoding="utf-8"
        )
    return text
