"""Classification and calibration metrics, in plain numpy.

Labels are integer indices into :data:`~emoapp.core.taxonomy.CANONICAL_LABELS`
(``gold`` and ``pred`` arrays of shape ``(n,)``); probabilities are ``(n, 7)``.

- accuracy; macro-F1 over the labels present in the gold labels (a label never in gold
  does not count, whether or not it is predicted); weighted F1, the per-class F1 averaged
  with each label's share of the gold labels as its weight (what MELD papers report, and
  scikit-learn's ``average="weighted"``); per-class recall (NaN for a label
  absent from gold); the confusion matrix (rows gold, columns predicted);
- expected calibration error: top-label confidence in 15 equal-width bins over [0, 1],
  ``sum_b n_b / n * |accuracy_b - confidence_b|`` (Guo et al., 2017);
- negative log-likelihood of the gold label;
- per group, the same figures and the gap between the best and the worst group;
- percentile bootstrap confidence intervals (seeded), resampling items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emoapp.core.taxonomy import NUM_LABELS

ECE_BINS = 15
BOOTSTRAP_SAMPLES = 1000
_NLL_FLOOR = 1e-12


def confusion_matrix(gold: np.ndarray, pred: np.ndarray, n_labels: int = NUM_LABELS) -> np.ndarray:
    """``cm[i, j]``: how many items of gold label ``i`` were predicted ``j``."""
    gold = np.asarray(gold, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    if gold.shape != pred.shape:
        raise ValueError("gold and pred must have the same shape")
    return np.bincount(gold * n_labels + pred, minlength=n_labels * n_labels).reshape(
        n_labels, n_labels
    )


def accuracy(gold: np.ndarray, pred: np.ndarray) -> float:
    gold, pred = np.asarray(gold), np.asarray(pred)
    return float(np.mean(gold == pred)) if gold.size else float("nan")


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each gold label (NaN where the label has no gold items)."""
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def per_class_precision(cm: np.ndarray) -> np.ndarray:
    """Precision of each label (NaN where the label is never predicted)."""
    predicted = cm.sum(axis=0)
    return np.where(predicted > 0, np.diag(cm) / np.maximum(predicted, 1), np.nan)


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 of each label, ``2 tp / (2 tp + fp + fn)`` (NaN where the label appears in
    neither gold nor predictions)."""
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def macro_f1_from_cm(cm: np.ndarray) -> float:
    """Mean F1 over the labels that have gold items."""
    present = cm.sum(axis=1) > 0
    if not present.any():
        return float("nan")
    return float(np.mean(per_class_f1(cm)[present]))


def macro_f1(gold: np.ndarray, pred: np.ndarray, n_labels: int = NUM_LABELS) -> float:
    return macro_f1_from_cm(confusion_matrix(gold, pred, n_labels))


def weighted_f1_from_cm(cm: np.ndarray) -> float:
    """Per-class F1 averaged with weights ``support_k / n`` (gold counts); NaN when
    there are no items."""
    support = cm.sum(axis=1).astype(np.float64)
    total = support.sum()
    if total <= 0:
        return float("nan")
    present = support > 0
    return float(np.dot(per_class_f1(cm)[present], support[present]) / total)


def weighted_f1(gold: np.ndarray, pred: np.ndarray, n_labels: int = NUM_LABELS) -> float:
    return weighted_f1_from_cm(confusion_matrix(gold, pred, n_labels))


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin of a reliability diagram."""

    lower: float
    upper: float
    count: int
    accuracy: float  # NaN when empty
    confidence: float  # NaN when empty


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1]; bin ``b`` holds confidences in ``(b/n, (b+1)/n]``
    (the first bin also holds 0)."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # lower < confidence <= upper, compared against the edges themselves (no rounding
    # surprises such as 0.6 * 15 landing in the next bin).
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        bins.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=count,
                accuracy=float(hit[members].mean()) if count else float("nan"),
                confidence=float(conf[members].mean()) if count else float("nan"),
            )
        )
    return bins


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Top-label ECE: the count-weighted mean gap between accuracy and confidence."""
    n = len(confidence)
    if n == 0:
        return float("nan")
    return float(
        sum(
            b.count / n * abs(b.accuracy - b.confidence)
            for b in reliability_bins(confidence, correct, n_bins)
            if b.count
        )
    )


def negative_log_likelihood(probs: np.ndarray, gold: np.ndarray) -> float:
    """Mean ``-log p(gold)``, with p floored at 1e-12 (a label a model cannot express
    costs about 27.6 nats)."""
    p = np.asarray(probs, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    picked = p[np.arange(len(p)), np.asarray(gold, dtype=np.int64)]
    return float(np.mean(-np.log(np.maximum(picked, _NLL_FLOOR))))


# --- bootstrap ------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A confidence interval (percentile bootstrap)."""

    low: float
    high: float
    level: float = 0.95


def bootstrap_intervals(
    gold: np.ndarray,
    pred: np.ndarray,
    n_labels: int = NUM_LABELS,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[Interval, Interval]:
    """Percentile bootstrap intervals of (accuracy, macro-F1), resampling items with
    replacement ``samples`` times from a generator seeded with ``seed``. In each resample,
    macro-F1 averages over the labels present in that resample's gold labels."""
    gold = np.asarray(gold, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    n = len(gold)
    if n == 0:
        nan = Interval(float("nan"), float("nan"), level)
        return nan, nan
    rng = np.random.default_rng(seed)
    accs = np.empty(samples)
    f1s = np.empty(samples)
    # Resample in blocks to keep memory small on large sets.
    block = max(1, 2_000_000 // max(n, 1))
    k2 = n_labels * n_labels
    for start in range(0, samples, block):
        stop = min(samples, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        g, p = gold[idx], pred[idx]
        accs[start:stop] = (g == p).mean(axis=1)
        offsets = (np.arange(stop - start) * k2)[:, None]
        cms = np.bincount((offsets + g * n_labels + p).ravel(), minlength=(stop - start) * k2)
        cms = cms.reshape(stop - start, n_labels, n_labels)
        tp = np.diagonal(cms, axis1=1, axis2=2).astype(np.float64)
        support = cms.sum(axis=2)
        predicted = cms.sum(axis=1)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
        present = support > 0
        f1s[start:stop] = (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    tail = (1.0 - level) / 2 * 100
    lo_a, hi_a = np.percentile(accs, [tail, 100 - tail])
    lo_f, hi_f = np.percentile(f1s, [tail, 100 - tail])
    return Interval(float(lo_a), float(hi_a), level), Interval(float(lo_f), float(hi_f), level)


# --- everything about one set of predictions ------------------------------------------


@dataclass
class ClassificationReport:
    """Every figure for one system on one set of items."""

    n: int
    accuracy: float
    macro_f1: float
    ece: float
    nll: float
    confusion: np.ndarray
    recall: np.ndarray  # per canonical label, NaN where absent from gold
    reliability: list[ReliabilityBin]
    accuracy_ci: Interval | None = None
    macro_f1_ci: Interval | None = None
    weighted_f1: float = float("nan")


def classification_report(
    gold: np.ndarray,
    probs: np.ndarray,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> ClassificationReport:
    """All metrics for probabilities ``probs`` (n x 7) against ``gold`` (n,).
    ``bootstrap=0`` skips the intervals."""
    gold = np.asarray(gold, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64).reshape(len(gold), NUM_LABELS)
    pred = probs.argmax(axis=1) if len(gold) else np.zeros(0, dtype=np.int64)
    confidence = probs.max(axis=1) if len(gold) else np.zeros(0)
    cm = confusion_matrix(gold, pred)
    correct = pred == gold
    report = ClassificationReport(
        n=len(gold),
        accuracy=accuracy(gold, pred),
        macro_f1=macro_f1_from_cm(cm),
        ece=expected_calibration_error(confidence, correct),
        nll=negative_log_likelihood(probs, gold),
        confusion=cm,
        recall=per_class_recall(cm),
        reliability=reliability_bins(confidence, correct),
        weighted_f1=weighted_f1_from_cm(cm),
    )
    if bootstrap > 0 and len(gold):
        report.accuracy_ci, report.macro_f1_ci = bootstrap_intervals(
            gold, pred, samples=bootstrap, seed=seed
        )
    return report


@dataclass
class GroupReport:
    """One system's figures per group, and the spread between groups."""

    groups: dict[str, ClassificationReport] = field(default_factory=dict)

    def _spread(self, attribute: str, min_n: int) -> tuple[str, str, float] | None:
        scored = {
            g: getattr(r, attribute)
            for g, r in self.groups.items()
            if r.n >= min_n and not np.isnan(getattr(r, attribute))
        }
        if len(scored) < 2:
            return None
        best = max(scored, key=lambda g: scored[g])
        worst = min(scored, key=lambda g: scored[g])
        return best, worst, float(scored[best] - scored[worst])

    def accuracy_gap(self, min_n: int = 1) -> tuple[str, str, float] | None:
        """(best group, worst group, accuracy difference) over groups with at least
        ``min_n`` items; None with fewer than two such groups."""
        return self._spread("accuracy", min_n)

    def macro_f1_gap(self, min_n: int = 1) -> tuple[str, str, float] | None:
        return self._spread("macro_f1", min_n)


def group_report(
    gold: np.ndarray,
    probs: np.ndarray,
    groups: Sequence[str | None],
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> GroupReport:
    """:func:`classification_report` per group (items without a group are left out)."""
    gold = np.asarray(gold, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    names = np.asarray([g if g is not None else "" for g in groups], dtype=object)
    report = GroupReport()
    for name in sorted({g for g in groups if g is not None}):
        members = names == name
        report.groups[name] = classification_report(
            gold[members], probs[members], bootstrap=bootstrap, seed=seed
        )
    return report
