"""The training script's fit of the speaker-novelty temperature, on synthetic held-out
predictions: novelty measured in training as the encoder measures it at run time, and a
fit that tells familiar speakers (calibrated at T = 1) from novel ones (overconfident)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from emoapp.encoders.adaptation import AdaptationSpec, SpeakerStats
from emoapp.encoders.novelty import NoveltyTemperature

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

T = pytest.importorskip("train_embedded_voice")


def _pool(rng: np.random.Generator) -> tuple[T.Pool, np.ndarray]:
    """Two corpora: 'near' (12 speakers close together) and 'far' (4 speakers offset);
    columns as the script's "base+emb" expects (the others are zeros)."""
    d = T.N_BASE + T.N_MEL + T.N_EMB
    xs, spk, corpus, clip = [], [], [], []
    c = 0
    for name, n_spk, shift in (("near", 12, 0.0), ("far", 4, 3.0)):
        for s in range(n_spk):
            centre = rng.normal(shift, 0.3, size=d)
            for _ in range(10):  # clips
                x = centre + rng.normal(0, 1.0, size=(2, d))  # two windows each
                xs.append(x)
                spk += [f"{name}-{s}"] * 2
                corpus += [name] * 2
                clip += [c, c]
                c += 1
    x = np.vstack(xs)
    y = rng.integers(0, 7, size=c)[np.array(clip)]
    data = T.Pool(
        x,
        y,
        np.array(clip),
        np.array(spk, dtype=object),
        np.full(len(x), "", dtype=object),
        np.array(corpus, dtype=object),
        c,
    )
    return data, y


def _fitted(data: T.Pool, train: np.ndarray) -> T.Fitted:
    cols = T.columns("base+emb")
    x = data.x[train][:, cols]
    spec = AdaptationSpec(x.mean(0), np.ones(len(cols)), 128.0, reference_var=x.var(0) + 1e-9)
    return T.Fitted(cols, spec, {})


def test_novelty_in_training_is_what_the_encoder_measures():
    data, _ = _pool(np.random.default_rng(0))
    test = data.corpus == "far"
    f = _fitted(data, ~test)
    nov = T.novelty_rows(data, {"far": (f, test)})
    _, means = T.speaker_means(data.x[~test][:, f.cols], data.speaker[~test])
    model = NoveltyTemperature.build(
        np.array(list(means.values())),
        f.spec.reference,  # type: ignore[union-attr]
        np.sqrt(f.spec.reference_var),  # type: ignore[union-attr]
        {"t_familiar": 1.0, "t_novel": 2.0, "midpoint": 1.0, "slope": 4.0},
    )
    for s in np.unique(data.speaker[test]):
        rows = data.speaker == s
        stats = SpeakerStats.of(data.x[rows][:, f.cols])
        assert nov[rows][0] == pytest.approx(model.novelty(stats))
    assert np.all(nov[test] > 2.0)  # the far corpus is far


def test_the_fit_gives_novel_speakers_the_higher_temperature():
    rng = np.random.default_rng(1)
    data, y = _pool(rng)
    n = len(y)
    # held-out probabilities: confident everywhere (top 0.9), right 90% of the time on the
    # near corpus (calibrated) and 35% of the time on the far one (overconfident)
    right = np.where(data.corpus == "near", 0.9, 0.35)
    clip_right = (
        rng.random(data.n_clips) < right[np.searchsorted(data.clip, np.arange(data.n_clips))]
    )
    top = np.where(clip_right[data.clip], y, (y + 1) % 7)
    p = np.full((n, 7), 0.1 / 6)
    p[np.arange(n), top] = 0.9
    far = data.corpus == "far"
    # a corpus never heard (the far one, against the near corpus's speakers) and unheard
    # speakers of a known corpus (half the near speakers against the other half)
    near = ~far
    half = near & np.isin(data.speaker, [f"near-{i}" for i in range(6)])
    nov_loco = T.novelty_rows(data, {"far": (_fitted(data, near), far)})
    nov_lso = T.novelty_rows(
        data, {0: (_fitted(data, near & ~half), half), 1: (_fitted(data, half), near & ~half)}
    )
    params = T.fit_novelty_temperature([(p, nov_loco, far), (p, nov_lso, near)], data)
    assert T.NOVELTY_MIN_T_FAMILIAR <= params["t_familiar"] < params["t_novel"]
    assert params["slope"] <= T.NOVELTY_MAX_SLOPE
    windows = np.full(n, 20.0)
    t_far = T.row_temperatures(params, nov_loco, windows)[far]
    t_near = T.row_temperatures(params, nov_lso, windows)[near]
    assert t_far.mean() > t_near.mean() + 0.5
