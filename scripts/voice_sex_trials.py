#!/usr/bin/env python3
"""Cheap remedies for the embedded voice model's sex gap, judged by cross-validation only.

    scripts/voice_sex_trials.py [--data ../shared/data] [--cache DIR] [--holdout-actors 15-18]
                                [--report FILE]

The shipped recipe (``scripts/train_embedded_voice.py``'s chosen candidate: shrunk
per-speaker z-score, k = 128, MLP h = 64) against three variants:

- ``weights``: sample weights that give each sex the same total weight within every corpus
  with both (TurEV-DB's speakers' sex is unknown: weight 1);
- ``reference``: the adaptation's population reference (mean and spread) from the sexes
  balanced (the mean of the female speakers' mean and the male speakers' mean) rather
  than from the windows (which over-represent whichever sex has more speech);
- ``both``.

Each is scored by leave-one-corpus-out and by leave-speakers-out (the training script's
five speaker-grouped folds): clip accuracy per corpus, and on RAVDESS the accuracy per
actor, the gap of the actors' means with a bootstrap over actors, and the spread of the
gap over every choice of two actresses and two actors. RAVDESS actors ``--holdout-actors``
(default 15-18, the held-out figure's actors) are never read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import train_embedded_voice as T  # noqa: E402
from voice_corpora import CORPORA, extract  # noqa: E402

from emoapp.encoders.adaptation import AdaptationSpec  # noqa: E402

VARIANTS = ("none", "weights", "reference", "both")


def sex_weights(spk: np.ndarray, sex_of: dict[str, str]) -> np.ndarray:
    sex = np.array([sex_of[s] for s in spk])
    corpus = np.array([s.split("-")[0] for s in spk])
    w = np.ones(len(spk))
    for c in np.unique(corpus):
        m = corpus == c
        f, ma = m & (sex == "female"), m & (sex == "male")
        if f.any() and ma.any():
            w[f] = m.sum() / 2 / f.sum()
            w[ma] = m.sum() / 2 / ma.sum()
    return w / w.mean()


def make_fit(variant: str, sex_of: dict[str, str]) -> Any:
    def fit(
        candidate: T.Candidate, x: np.ndarray, y: np.ndarray, spk: np.ndarray, seed: int
    ) -> T.Fitted:
        assert candidate.kind == "mlp" and candidate.scale and candidate.adapt == "all"
        cols = T.columns(candidate.features)
        x = x[:, cols]
        weights = sex_weights(spk, sex_of) if variant in ("weights", "both") else None
        if variant in ("reference", "both"):
            sexes = np.array([sex_of[s] for s in spk])
            per_sex = [
                np.mean([x[spk == s].mean(0) for s in np.unique(spk[sexes == sx])], axis=0)
                for sx in ("female", "male")
            ]
            ref = np.mean(per_sex, axis=0)
            var = np.maximum(((x - ref) ** 2).mean(0), 1e-12)
        else:
            ref, var = x.mean(0), np.maximum(x.var(0), 1e-12)
        spec = AdaptationSpec(ref, np.ones(x.shape[1]), candidate.prior, reference_var=var)
        z = T.adapt_rows(spec, x, spk)
        mean, scale = z.mean(0), z.std(0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        return T.Fitted(
            cols,
            spec,
            {
                "mean": mean,
                "scale": scale,
                **T.fit_mlp(candidate, (z - mean) / scale, y, seed, sample_weight=weights),
            },
        )

    return fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/emoapp-cache/voice"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout-actors", default="15-18", metavar="A-B")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    lo, _, hi = args.holdout_actors.partition("-")
    held = {f"ravdess-{a:02d}" for a in range(int(lo), int(hi or lo) + 1)} if lo else set()
    with threadpool_limits(1):
        data = T.pool([extract(args.data, c, args.cache) for c in CORPORA])
    data = data.where(~np.isin(data.speaker, sorted(held)))
    sex_of = dict(zip(data.speaker, data.sex, strict=True))
    chosen = T.CANDIDATES[9]
    shipped_fit = T.fit
    report: dict[str, Any] = {"candidate": chosen.name, "held_out_actors": sorted(held)}
    for variant in VARIANTS:
        T.fit = shipped_fit if variant == "none" else make_fit(variant, sex_of)
        with threadpool_limits(1):
            loco = T.loco(chosen, data, args.seed, list(CORPORA))
            lso = T.leave_speakers_out(chosen, data, args.seed, unadapted_too=False)
        every = np.ones(len(data.y), dtype=bool)
        pa = lso["adapted"]["oof_a"]
        per_corpus = {}
        for c in CORPORA:
            rows = data.corpus == c
            per_corpus[c] = {
                "loco": {
                    k: round(v, 4)
                    for k, v in loco["folds"][c]["a"].items()
                    if k.startswith("accuracy")
                },
                "lso": {
                    k: round(v, 4)
                    for k, v in T.scores(pa[rows], data, rows).items()
                    if k.startswith("accuracy")
                },
            }
        row = {
            "loco_mean": round(
                float(np.mean([f["a"]["accuracy"] for f in loco["folds"].values()])), 4
            ),
            "lso_mean": round(
                float(np.mean([v["lso"]["accuracy"] for v in per_corpus.values()])), 4
            ),
            "lso_pooled": round(T.scores(pa, data, every)["accuracy"], 4),
            "per_corpus": per_corpus,
            "ravdess_actors": T.actor_spread(pa, data, args.seed),
        }
        report[variant] = row
        r = per_corpus["ravdess"]["lso"]
        print(
            f"{variant:10s} LOCO mean {row['loco_mean']:.3f}  LSO mean {row['lso_mean']:.3f}  "
            f"RAVDESS LSO {r['accuracy']:.3f} (female {r['accuracy_female']:.3f}, male "
            f"{r['accuracy_male']:.3f}); actor-mean gap "
            f"{row['ravdess_actors']['gap_of_actor_means']:+.3f} "
            f"{row['ravdess_actors']['gap_bootstrap_95']}",
            file=sys.stderr,
            flush=True,
        )
    T.fit = shipped_fit
    if args.report:
        args.report.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
