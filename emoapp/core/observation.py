"""Observation models: how a model's outputs relate to the true canonical label.

Late fusion treats each model as a noisy *observation* of the true label. Its observation
model is a matrix ``O[i, j] = P(model outputs label i | the true label is j)`` over the
seven canonical labels (rows: outputs, columns: true labels). Outputs are the canonical
labels a model can express after its label map (its *mask*); rows outside the mask are 0
and every column sums to 1.

:meth:`ObservationModel.posterior` turns a prediction (a distribution over the model's
outputs) into a full 7-label posterior over the true label, with Bayes' rule per output
and a prior over true labels (uniform unless stated)::

    P(true j | output i) = O[i, j] * prior[j] / sum_k O[i, k] * prior[k]
    posterior[j]         = sum_i p[i] * P(true j | output i)

so every model speaks about every label, with one meaning. Where the matrix comes from:

- **By default, from the label map**: an output that is a canonical label points at that
  label (``O[i, i] = 1``); a true label the model cannot express spreads evenly over its
  outputs (it has no way to say it, so any output is as likely): a 4-class voice model's
  "angry" then leaves some posterior mass on fear, disgust and surprise.
- **Catch-all outputs** (``covers``): an output that stands for several true labels, e.g.
  the smile detector's "neutral", which is really "no smile": ``covers = {"neutral":
  ["neutral", "sad", "angry", "fearful", "disgusted", "surprised"]}`` makes every non-smile
  label produce "neutral", so "no smile" is spread over six labels instead of claiming
  neutral.
- **Fitted** on labelled data by :func:`fit_observation` (``emoapp evaluate --fit``): the
  model's mean output distribution for each gold label, smoothed towards the default by a
  Dirichlet prior, so labels with few examples stay close to the label map's meaning.

Finally the posterior is mixed with a uniform floor of ``FLOOR`` (1e-3): no model is ever
certain a label is impossible, which keeps log-linear pooling finite and continuous.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX, NUM_LABELS

FLOOR = 1e-3
"""Share of every expanded posterior spread evenly over the seven labels."""

UNIFORM_PRIOR = np.full(NUM_LABELS, 1.0 / NUM_LABELS)


def default_matrix(
    mask: np.ndarray, covers: Mapping[str, Sequence[str]] | None = None
) -> np.ndarray:
    """The observation matrix a label map implies (see the module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (NUM_LABELS,) or not mask.any():
        raise ValueError("mask must be 7 booleans with at least one True")
    claimed: dict[int, list[int]] = {}
    for output, trues in (covers or {}).items():
        if output not in LABEL_INDEX:
            raise ValueError(f"observation: {output!r} is not a canonical label")
        i = LABEL_INDEX[output]
        if not mask[i]:
            raise ValueError(f"observation: the model cannot output {output!r}")
        for true in trues:
            if true not in LABEL_INDEX:
                raise ValueError(f"observation: {true!r} is not a canonical label")
            claimed.setdefault(LABEL_INDEX[true], []).append(i)
    matrix = np.zeros((NUM_LABELS, NUM_LABELS))
    outputs = np.flatnonzero(mask)
    for j in range(NUM_LABELS):
        if j in claimed:
            for i in claimed[j]:
                matrix[i, j] += 1.0 / len(claimed[j])
        elif mask[j]:
            matrix[j, j] = 1.0
        else:
            matrix[outputs, j] = 1.0 / len(outputs)
    return matrix


def _validated(matrix: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (NUM_LABELS, NUM_LABELS):
        raise ValueError(f"an observation matrix is {NUM_LABELS}x{NUM_LABELS}, not {m.shape}")
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ValueError("an observation matrix holds finite, non-negative numbers")
    if mask is not None:
        m = np.where(np.asarray(mask, dtype=bool)[:, None], m, 0.0)
    sums = m.sum(axis=0)
    if np.any(sums <= 0):
        raise ValueError("every true label needs some output in an observation matrix")
    return m / sums


@dataclass(frozen=True)
class ObservationModel:
    """One model's ``P(output | true label)``: a fitted ``matrix``, or ``covers`` (catch-all
    outputs) applied to whatever mask the model's predictions carry."""

    matrix: np.ndarray | None = None
    covers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    prior: np.ndarray = field(default_factory=lambda: UNIFORM_PRIOR.copy())
    source: str = "label map"

    def __post_init__(self) -> None:
        prior = np.asarray(self.prior, dtype=np.float64)
        if prior.shape != (NUM_LABELS,) or np.any(prior <= 0) or not np.all(np.isfinite(prior)):
            raise ValueError("an observation prior is 7 positive numbers")
        object.__setattr__(self, "prior", prior / prior.sum())
        if self.matrix is not None:
            object.__setattr__(self, "matrix", _validated(self.matrix, None))
        if self.covers:
            default_matrix(np.ones(NUM_LABELS, dtype=bool), self.covers)  # validates names

    def matrix_for(self, mask: np.ndarray) -> np.ndarray:
        """The observation matrix for predictions with this mask."""
        if self.matrix is not None:
            return _validated(self.matrix, mask)
        return default_matrix(mask, self.covers)

    def decoder(self, mask: np.ndarray) -> np.ndarray:
        """``D[i, j] = P(true j | output i)`` (rows of outputs the model never gives are
        uniform; they meet zero probability anyway)."""
        joint = self.matrix_for(mask) * self.prior[None, :]
        totals = joint.sum(axis=1, keepdims=True)
        return np.where(totals > 0, joint / np.where(totals > 0, totals, 1.0), 1.0 / NUM_LABELS)

    def posterior(self, probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The full 7-label posterior of a prediction (``probs`` over its outputs, shape
        ``(..., 7)``), floored as the module docstring says."""
        p = np.asarray(probs, dtype=np.float64)
        q = p @ self.decoder(mask)
        total = q.sum(axis=-1, keepdims=True)
        q = q / np.where(total > 0, total, 1.0)
        return (1.0 - FLOOR) * q + FLOOR / NUM_LABELS

    def cannot_tell_apart(self, mask: np.ndarray) -> list[list[str]]:
        """Groups of true labels this model cannot distinguish (identical columns),
        for cards and panels: e.g. [["neutral", "sad", "angry", ...]] for the smile model."""
        matrix = self.matrix_for(mask)
        groups: list[list[str]] = []
        seen: set[int] = set()
        for j in range(NUM_LABELS):
            if j in seen:
                continue
            same = [k for k in range(NUM_LABELS) if np.allclose(matrix[:, j], matrix[:, k])]
            seen.update(same)
            if len(same) > 1:
                groups.append([CANONICAL_LABELS[k] for k in same])
        return groups

    def to_rows(self, mask: np.ndarray) -> list[list[float]]:
        """The matrix as nested lists (rows: outputs), for a profile file."""
        return [[round(float(v), 5) for v in row] for row in self.matrix_for(mask)]


DEFAULT_OBSERVATION = ObservationModel()


def fit_observation(
    probs: np.ndarray,
    masks: np.ndarray,
    gold: np.ndarray,
    base: ObservationModel | None = None,
    strength: float = 2.0,
) -> ObservationModel:
    """Estimate ``P(output | true label)`` from a model's predictions on labelled units.

    ``probs`` ``(n, 7)`` are the predictions, ``masks`` ``(n, 7)`` their masks (one model:
    all equal), ``gold`` ``(n,)`` canonical label indices. Column ``j`` is the mean output
    distribution over the units whose gold label is ``j``, smoothed by a Dirichlet prior of
    total weight ``strength`` centred on ``base``'s matrix (default: the label map's), so
    a label with no examples keeps the label map's meaning.
    """
    probs = np.asarray(probs, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[1] != NUM_LABELS or len(probs) != len(gold):
        raise ValueError("fit_observation needs probs (n, 7) and gold (n,)")
    given = np.asarray(masks, dtype=bool)
    mask: np.ndarray = np.asarray(given.any(axis=0) if given.ndim == 2 else given)
    base_matrix = (base or DEFAULT_OBSERVATION).matrix_for(mask)
    counts = np.zeros((NUM_LABELS, NUM_LABELS))
    np.add.at(counts.T, gold, probs)  # counts[:, j] += probs of units with gold j
    matrix = counts + strength * base_matrix
    matrix = np.where(mask[:, None], matrix, 0.0)
    return ObservationModel(matrix=matrix / matrix.sum(axis=0), source="fitted")
