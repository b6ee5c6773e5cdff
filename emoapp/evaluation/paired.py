"""Paired evaluation: evidence that fusing helps, without an audio-visual-text corpus.

Labelled data with faces, voices *and* words of the same moment is rare. A paired
evaluation builds label-matched tuples from unimodal labelled sets instead: for each
pair it draws a label (uniformly from the labels every set has, so each label weighs the
same in macro-F1), then one item of that label from each set (with replacement, seeded).
Each modality's encoder predicts its own items (through the prediction cache), and every
system (each modality alone, every combination, all fused) is scored on the pairs with
the app's own fusion (:func:`emoapp.evaluation.scoring.score_all`, which goes through
:func:`emoapp.core.fusion.pool_batch`).

What this measures, and what it does not: the items of a pair come from different people
and recordings, so **their errors are independent**, the case most favourable to late
fusion. In real multimodal data the modalities of one moment err together (a muted face
and a flat voice), so real gains are smaller. Read a paired figure as an upper bound on
what fusing these encoders can add, and as a check that fusing does not *lose* to the
best single modality.

Faces can come straight from a FER2013 archive (``--pair face=.../fer2013/test.tar.gz``,
:func:`read_fer2013`): the image-folder release's ``./<emotion>/<Split>_<n>.jpg``,
read with :mod:`tarfile` without unpacking; the members a run needs are written once to
a cache folder (:func:`materialise_fer2013`, never into the project). The split in the
file name (``Training``, ``PublicTest``, ``PrivateTest``) is the ``split`` column, so
``--pair-where face:split=PublicTest`` keeps the validation faces. The faces are already
cropped: :class:`WholeFrameLocator` tells the face encoder the whole image is the face.

``--fit`` with ``--pair`` (:func:`split_sets`, :func:`fit_paired`): each set's items are
split in half, stratified by label; tuples drawn from the fit halves choose the fusion's
reliability priors, its certainty power and the "uncertain" threshold; tuples drawn from
the other halves (no item shared with the fit tuples) score the result.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from emoapp.core.errors import EmoappError
from emoapp.core.fusion import FusionConfig, pool_batch
from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX
from emoapp.evaluation.datasets import (
    DatasetError,
    EvalDataset,
    EvalItem,
    SkippedRecord,
    canonical_label,
)
from emoapp.evaluation.metrics import BOOTSTRAP_SAMPLES, Interval, macro_f1
from emoapp.evaluation.predict import ItemPrediction
from emoapp.evaluation.scoring import (
    FusionSetup,
    Predictions,
    SystemScore,
    score_all,
    system_probs,
)

INDEPENDENCE_NOTE = (
    "Paired items come from different recordings and people, so the modalities' errors are "
    "independent: the case most favourable to late fusion. Real multimodal data, where the "
    "modalities of one moment err together, gives smaller gains."
)


@dataclass(frozen=True)
class Pair:
    """One label-matched tuple: an item of each modality's set, all with ``label``."""

    id: str
    label: str
    members: dict[Modality, EvalItem]


def shared_labels(datasets: Mapping[Modality, EvalDataset]) -> list[str]:
    """The canonical labels every set has items of, in canonical order."""
    have = [{item.label for item in d.items} for d in datasets.values()]
    common = set.intersection(*have) if have else set()
    return [label for label in CANONICAL_LABELS if label in common]


def draw_pairs(datasets: Mapping[Modality, EvalDataset], n: int, seed: int = 0) -> list[Pair]:
    """``n`` label-matched pairs (see the module docstring), seeded."""
    if n <= 0:
        raise EmoappError("--pairs must be a positive number")
    if len(datasets) < 2:
        raise EmoappError("a paired evaluation needs at least two --pair sets")
    labels = shared_labels(datasets)
    if not labels:
        names = ", ".join(f"{m.value}: {d.name}" for m, d in datasets.items())
        raise EmoappError(f"the --pair sets share no label ({names})")
    rng = random.Random(seed)
    by_label = {
        m: {label: [i for i in d.items if i.label == label] for label in labels}
        for m, d in datasets.items()
    }
    pairs = []
    for k in range(n):
        label = rng.choice(labels)
        members = {m: rng.choice(by_label[m][label]) for m in datasets}
        pairs.append(Pair(f"pair{k:05d}", label, members))
    return pairs


def paired_predictions(
    pairs: Sequence[Pair], predictions: Mapping[Modality, Mapping[str, ItemPrediction]]
) -> tuple[list[EvalItem], Predictions]:
    """The pairs as items, and each modality's prediction of its member, keyed by pair."""
    items = [EvalItem(p.id, p.label) for p in pairs]
    out: dict[Modality, dict[str, ItemPrediction]] = {m: {} for m in predictions}
    for pair in pairs:
        for m, member in pair.members.items():
            p = predictions.get(m, {}).get(member.id)
            if p is not None:
                out[m][pair.id] = replace(p, item_id=pair.id)
    return items, out


@dataclass
class Gain:
    """Fused macro-F1 minus the best single modality's, with a paired bootstrap interval
    (the same resampled pairs score both systems)."""

    fused: str
    best_single: str
    difference: float
    interval: Interval | None


@dataclass
class PairedResult:
    labels: list[str]
    pairs: int
    scores: list[SystemScore]
    gain: Gain | None
    sets: dict[Modality, str] = field(default_factory=dict)
    coverage: dict[Modality, int] = field(default_factory=dict)
    """Pairs whose member that modality predicted."""
    gain_over_subsets: Gain | None = None
    """With three modalities: all fused minus the best fusion of two."""


def paired_gain(
    items: Sequence[EvalItem],
    predictions: Predictions,
    setup: FusionSetup,
    scores: Sequence[SystemScore],
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    versus: str = "single",
) -> Gain | None:
    """The gain of fusing everything over the best single modality (``versus="single"``)
    or over the best fusion of fewer modalities (``versus="subset"``, e.g. face+voice
    against face+voice+text), on the pairs every modality predicted."""
    full = [s for s in scores if len(s.system.modalities) == len(predictions)]
    if versus == "subset":
        others = [s for s in scores if s.system.fused and s not in full]
    else:
        others = [s for s in scores if not s.system.fused]
    if not others or not full or len(full[0].system.modalities) < 2:
        return None
    best = max(others, key=lambda s: s.report.macro_f1)
    ids = [i.id for i in items]
    fused_probs = system_probs(full[0].system, ids, predictions, setup)
    single_probs = system_probs(best.system, ids, predictions, setup)
    common = [i for i in items if i.id in fused_probs and i.id in single_probs]
    if not common:
        return None
    gold = np.array([LABEL_INDEX[i.label] for i in common])
    pf = np.array([int(np.argmax(fused_probs[i.id])) for i in common])
    ps = np.array([int(np.argmax(single_probs[i.id])) for i in common])
    difference = macro_f1(gold, pf) - macro_f1(gold, ps)
    interval = None
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        diffs = np.empty(bootstrap)
        for b in range(bootstrap):
            idx = rng.integers(0, len(common), size=len(common))
            diffs[b] = macro_f1(gold[idx], pf[idx]) - macro_f1(gold[idx], ps[idx])
        low, high = np.percentile(diffs, [2.5, 97.5])
        interval = Interval(float(low), float(high))
    return Gain(full[0].system.name, best.system.name, float(difference), interval)


def score_pairs(
    pairs: Sequence[Pair],
    predictions: Mapping[Modality, Mapping[str, ItemPrediction]],
    setup: FusionSetup,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> PairedResult:
    """Every system scored on the pairs, and the gain of fusing."""
    items, paired = paired_predictions(pairs, predictions)
    scores = score_all(items, paired, setup, bootstrap, seed, with_groups=False)
    gain = paired_gain(items, paired, setup, scores, bootstrap, seed)
    over = paired_gain(items, paired, setup, scores, bootstrap, seed, versus="subset")
    labels = sorted({p.label for p in pairs}, key=LABEL_INDEX.__getitem__)
    coverage = {m: sum(1 for p in by_id.values() if p.predicted) for m, by_id in paired.items()}
    return PairedResult(labels, len(pairs), scores, gain, coverage=coverage, gain_over_subsets=over)


# --- FER2013 faces from the archive -------------------------------------------------------

FER_MEMBER = re.compile(r"^(?:\./)?([a-z]+)/((Training|PublicTest|PrivateTest)_\d+\.jpg)$")


def is_fer2013(path: Path) -> bool:
    """True for a FER2013 image-folder archive (``*.tar.gz``/``*.tgz``/``*.tar``)."""
    name = path.name.lower()
    return path.is_file() and name.endswith((".tar.gz", ".tgz", ".tar"))


def _fer_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emoapp" / "fer2013"


def read_fer2013(path: Path, cache: Path | None = None) -> EvalDataset:
    """The faces of a FER2013 archive as items (labels from the folder names, ``split``
    and ``file`` columns); their ``video`` paths lie in ``cache`` (default
    ``~/.cache/emoapp/fer2013/<archive>``) and exist once :func:`materialise_fer2013`
    has written them."""
    path = Path(path).expanduser()
    try:
        with tarfile.open(path) as archive:
            names = archive.getnames()
    except (OSError, tarfile.TarError) as error:
        raise DatasetError(f"{path}: cannot read it as a FER2013 archive ({error})") from error
    key = hashlib.sha256(f"{path.resolve()}:{path.stat().st_size}".encode()).hexdigest()[:12]
    root = (cache or _fer_cache_root()) / f"{path.name.split('.')[0]}-{key}"
    dataset = EvalDataset(path.name, "fer2013", path, [], group_columns=("split",))
    for name in names:
        match = FER_MEMBER.match(name)
        if match is None:
            continue
        folder, file, split = match.groups()
        label = canonical_label(folder)
        if label is None:
            dataset.skipped.append(SkippedRecord(name, f"label {folder!r} is not canonical"))
            continue
        dataset.items.append(
            EvalItem(
                id=f"fer2013/{folder}/{file}",  # two train files share a name across classes
                label=label,
                video=root / folder / file,
                meta={"split": split, "file": name, "archive": str(path)},
            )
        )
    if not dataset.items:
        raise DatasetError(f"{path}: no ./<emotion>/<Split>_<n>.jpg faces in it")
    dataset.records = len(dataset.items)
    return dataset


def materialise_fer2013(items: Sequence[EvalItem]) -> int:
    """Write the archive members behind ``items`` (FER2013 items) to their cache paths,
    those not there yet; returns how many were written."""
    wanted: dict[str, dict[str, Path]] = {}
    for item in items:
        if item.video is not None and not item.video.is_file() and "archive" in item.meta:
            wanted.setdefault(item.meta["archive"], {})[item.meta["file"]] = item.video
    written = 0
    for archive_path, members in wanted.items():
        with tarfile.open(archive_path) as archive:
            for member in archive:
                target = members.get(member.name)
                if target is None or not member.isfile():
                    continue
                source = archive.extractfile(member)
                if source is None:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_suffix(".part")
                partial.write_bytes(source.read())
                partial.replace(target)
                written += 1
    return written


class WholeFrameLocator:
    """A face "detector" for images that are already a cropped face (FER2013): the whole
    image is the one face."""

    def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        height, width = image.shape[:2]
        return [(0, 0, int(width), int(height))]

    def detect_scored(self, image: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        return [(box, 1.0) for box in self.detect(image)]


# --- fitting the fusion on tuples -----------------------------------------------------------

CERTAINTY_POWERS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)
PAIRED_RELIABILITY_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
TARGET_PRECISION = 0.8
"""Default precision the "uncertain" threshold is chosen for: when a label is shown (not
uncertain), it is right at least this often on the fit tuples."""


def split_sets(
    datasets: Mapping[Modality, EvalDataset], seed: int = 0
) -> tuple[dict[Modality, EvalDataset], dict[Modality, EvalDataset]]:
    """Each set's items halved (stratified by label, seeded): (fit halves, held-out
    halves)."""
    from emoapp.evaluation.fitting import split_items

    fit: dict[Modality, EvalDataset] = {}
    held: dict[Modality, EvalDataset] = {}
    for m, d in datasets.items():
        a, b = split_items(d.items, 0.5, seed)
        fit[m] = replace(d, items=a, notes=[*d.notes, f"fit half: {len(a)} items"])
        held[m] = replace(d, items=b, notes=[*d.notes, f"held-out half: {len(b)} items"])
    return fit, held


@dataclass
class PairedFit:
    """What ``--fit`` chose on the fit tuples."""

    reliability: dict[Modality, float]
    confidence_power: float
    uncertain_below: float
    target_precision: float
    macro_f1: float
    """Macro-F1 of the fused system on the fit tuples with the chosen setting."""
    precision_shown: float
    """Accuracy on the fit tuples whose fused confidence is >= ``uncertain_below``."""
    shown_share: float
    """Share of the fit tuples shown with a label (not uncertain)."""
    table: list[dict[str, float]] = field(default_factory=list)
    """Every setting tried (the best reliability per power), for the report."""
    temperatures: dict[str, float] = field(default_factory=dict)
    """Per-model temperatures fitted on the fit tuples' units (empty: none fitted)."""


def _arrays(
    items: Sequence[EvalItem], predictions: Predictions, setup: FusionSetup
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Modality]]:
    """(posteriors (n, M, 7), present (n, M), certainty (n, M) as the setup's fuser
    measures it, gold (n,), modalities)."""
    modalities = list(predictions)
    q = np.full((len(items), len(modalities), 7), 1.0 / 7)
    present = np.zeros((len(items), len(modalities)), dtype=bool)
    sure = np.zeros((len(items), len(modalities)))
    for i, item in enumerate(items):
        for j, m in enumerate(modalities):
            p = predictions[m].get(item.id)
            if p is not None and p.predicted:
                prediction = setup.prediction(p)
                q[i, j] = setup.posterior(prediction)
                sure[i, j] = setup.certainty(prediction)
                present[i, j] = True
    gold = np.array([LABEL_INDEX[item.label] for item in items], dtype=np.int64)
    return q, present, sure, gold, modalities


def uncertain_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float
) -> tuple[float, float, float]:
    """The smallest threshold ``t`` (from the observed confidences) such that the items
    with confidence >= ``t`` are right at least ``target`` of the time; returns (t, that
    precision, the share shown). With no such ``t``: the highest confidence seen."""
    order = np.argsort(-confidence, kind="stable")
    c, ok = confidence[order], correct[order].astype(float)
    precision = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    good = np.flatnonzero(precision >= target)
    if len(good) == 0:
        return float(c[0]) if len(c) else 1.0, float("nan"), 0.0
    k = int(good.max())
    # every item tied with the k-th confidence is shown together with it
    t = float(c[k])
    shown = confidence >= t
    return t, float(correct[shown].mean()), float(shown.mean())


def fit_paired(
    items: Sequence[EvalItem],
    predictions: Predictions,
    setup: FusionSetup,
    target_precision: float = TARGET_PRECISION,
    powers: Sequence[float] = CERTAINTY_POWERS,
    grid: Sequence[float] = PAIRED_RELIABILITY_GRID,
    temperatures: bool = True,
) -> PairedFit:
    """With ``temperatures``, first a temperature per model fitted on the fit tuples'
    units (calibration on data like the input: an out-of-domain model's posteriors
    flatten, so its certainty, and weight, drop). Then the reliability priors (largest 1)
    and certainty power maximising the fused macro-F1 on the fit tuples (ties: the higher
    mean log-likelihood), then the uncertain threshold for ``target_precision``. Fusion
    goes through :func:`emoapp.core.fusion.pool_batch`, as in the app."""
    fitted_t: dict[str, float] = {}
    if temperatures:
        from emoapp.evaluation.fitting import fit_temperatures

        fitted_t = {m: t.temperature for m, t in fit_temperatures(items, predictions).items()}
        setup = FusionSetup(setup.config, {**setup.temperatures, **fitted_t})
    q, present, sure, gold, modalities = _arrays(items, predictions, setup)
    top = max(grid)

    def weights(values: Sequence[float], power: float) -> np.ndarray:
        # the fuser's weights_at: prior x certainty ** power, prior alone when all are 0
        prior = np.where(present, np.asarray(values)[None, :], 0.0)
        scaled = prior * sure**power if power > 0 else prior
        fallback = (scaled.sum(axis=1) <= 0)[:, None]
        return np.where(fallback, prior, scaled)

    best: tuple[float, float, tuple[float, ...], float] | None = None
    table = []
    for power in powers:
        best_here: tuple[float, float, tuple[float, ...]] | None = None
        for values in itertools.product(grid, repeat=len(modalities)):
            if max(values) != top:
                continue
            fused = pool_batch(q, weights(values, power), setup.config.rule)
            ok = ~np.isnan(fused[:, 0])
            fused = np.where(ok[:, None], fused, 1.0 / 7)  # an abstention: a uniform guess
            f1 = macro_f1(gold, np.argmax(fused, axis=1))
            ll = float(np.mean(np.log(np.maximum(fused[np.arange(len(gold)), gold], 1e-6))))
            if best_here is None or (f1, ll) > best_here[:2]:
                best_here = (f1, ll, values)
        assert best_here is not None
        table.append(
            {"power": power, "macro_f1": best_here[0], "log_likelihood": best_here[1]}
            | {m.value: v for m, v in zip(modalities, best_here[2], strict=True)}
        )
        if best is None or best_here[:2] > best[:2]:
            best = (best_here[0], best_here[1], best_here[2], power)
    assert best is not None
    f1, _, values, power = best
    fused = pool_batch(q, weights(values, power), setup.config.rule)
    conf = np.nan_to_num(fused).max(axis=1)
    correct = np.argmax(np.nan_to_num(fused), axis=1) == gold
    t, precision, shown = uncertain_threshold(conf, correct, target_precision)
    return PairedFit(
        dict(zip(modalities, values, strict=True)),
        power,
        t,
        target_precision,
        f1,
        precision,
        shown,
        table,
        fitted_t,
    )


def fitted_setup(setup: FusionSetup, chosen: PairedFit) -> FusionSetup:
    """``setup`` with the fitted reliabilities, power and threshold."""
    config: FusionConfig = replace(
        setup.config,
        reliability={**setup.config.reliability, **chosen.reliability},
        model_reliability={},
        confidence_power=chosen.confidence_power,
        uncertain_below=chosen.uncertain_below,
    )
    return FusionSetup(config, {**setup.temperatures, **chosen.temperatures})


def shown_precision(
    items: Sequence[EvalItem], predictions: Predictions, setup: FusionSetup, threshold: float
) -> tuple[float, float, int]:
    """On tuples scored with every modality fused: (accuracy where the fused confidence is
    >= ``threshold``, the share of tuples shown, tuples)."""
    from emoapp.evaluation.scoring import System

    system = System(tuple(predictions))
    probs = system_probs(system, [i.id for i in items], predictions, setup)
    scored = [i for i in items if i.id in probs]
    if not scored:
        return float("nan"), 0.0, 0
    conf = np.array([probs[i.id].max() for i in scored])
    ok = np.array([int(np.argmax(probs[i.id])) == LABEL_INDEX[i.label] for i in scored])
    shown = conf >= threshold
    precision = float(ok[shown].mean()) if shown.any() else float("nan")
    return precision, float(shown.mean()), len(scored)


def paired_profile_toml(
    name: str, models: Mapping[Modality, str | None], chosen: PairedFit, rule: str, source: str
) -> str:
    """A profile file holding the fitted fusion (reliability, confidence_power,
    uncertain_below, temperatures), for ``--profiles-file FILE --profile NAME``."""
    from emoapp.evaluation.fitting import _toml_key, _toml_number, _toml_string

    lines = [
        f"# Written by `emoapp evaluate --pair ... --fit` on {source}.",
        f"# Use it with: emoapp --profiles-file THIS_FILE --profile {name}",
        "",
        f"[profiles.{_toml_key(name)}]",
        f"description = {_toml_string('Fusion fitted on label-matched tuples: ' + source)}",
    ]
    for modality in (Modality.FACE, Modality.VOICE, Modality.TEXT):
        lines.append(f"{modality.value} = {_toml_string(models.get(modality) or 'none')}")
    lines += [
        "",
        f"[profiles.{_toml_key(name)}.fusion]",
        f"# Reliability prior of each modality (only the ratios matter; rule: {rule}).",
        "reliability = { "
        + ", ".join(f"{m.value} = {_toml_number(v)}" for m, v in chosen.reliability.items())
        + " }",
        "# Weight x certainty ** confidence_power (certainty: 1 - H/log 7 of the posterior).",
        f"confidence_power = {_toml_number(chosen.confidence_power)}",
        "# Flag estimates below this fused probability 'uncertain' (shown labels right",
        f"# >= {chosen.target_precision:g} of the fit tuples).",
        f"uncertain_below = {_toml_number(chosen.uncertain_below)}",
        "temperature = { "
        + ", ".join(
            f"{_toml_string(k)} = {_toml_number(v)}" for k, v in sorted(chosen.temperatures.items())
        )
        + " }",
        "",
    ]
    return "\n".join(lines)
