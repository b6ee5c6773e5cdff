#!/usr/bin/env python
"""Compare two text artefacts written by ``scripts/train_embedded_text.py`` on the dev
splits, under one protocol, with a paired bootstrap.

    .venv/bin/python scripts/compare_text_artefacts.py A_DIR B_DIR [--data ../shared/data]

For each domain (``conversation``: MELD dev; ``comments``: GoEmotions dev, the comments
whose labels map to one canonical label) and each artefact it scores the logits without
that artefact's per-label offsets (``meta.json`` ``training.logit_offsets`` taken back
out of the domain's bias), three ways:

- ``before offsets``: the argmax of those logits;
- ``dev offsets``: after offsets chosen on the whole dev split (what the training script
  ships for comments, and for conversation with ``--cross-fit 0``, as revision 2.0.0 did;
  optimistic: dev chose them);
- ``split-half offsets``: offsets chosen on one random half of dev and applied to the
  other half, both ways, averaged over 5 seeded splits (less optimistic);

then the paired bootstrap (1,000 seeded resamples of the dev items) of B minus A, before
and after dev offsets: the difference, its 95% interval and the share of resamples where
B is not better. The offsets are fitted as the training script fits them (MELD:
macro-F1 + weighted F1; GoEmotions: macro-F1). Needs the data only; never reads a test
split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from train_embedded_text import (  # noqa: E402
    fit_offsets,
    goemotions,
    label_tables,
    meld,
    objective,
)
from train_embedded_text import split_half as train_split_half  # noqa: E402

from emoapp.core.messages import Modality  # noqa: E402
from emoapp.encoders.embedded.text import NgramTextEncoder  # noqa: E402
from emoapp.evaluation.metrics import macro_f1, weighted_f1  # noqa: E402
from emoapp.registry import ModelSpec  # noqa: E402

SPLITS = 5
RESAMPLES = 1000


def raw_logits(folder: Path, domain: str, texts: list[str]) -> np.ndarray:
    encoder = NgramTextEncoder(ModelSpec(Modality.TEXT, str(folder), backend="embedded"))
    encoder.load()
    meta = json.loads((folder / "meta.json").read_text())
    offsets = np.array(list(meta["training"]["logit_offsets"][domain].values()))
    return np.array([encoder.logits(t, (), domain) for t in texts]) - offsets


def scores(gold: np.ndarray, pred: np.ndarray, domain: str) -> dict[str, float]:
    out = {"macro_f1": round(macro_f1(gold, pred), 4)}
    if domain == "conversation":
        out["weighted_f1"] = round(weighted_f1(gold, pred), 4)
    return out


def split_half(logits: np.ndarray, gold: np.ndarray, domain: str) -> dict[str, float]:
    """The training script's split-half protocol; each split scored, rounded, then averaged."""
    _, preds = train_split_half(logits, gold, SPLITS, domain)
    runs = [scores(gold, pred, domain) for pred in preds]
    return {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}


def bootstrap(gold: np.ndarray, pa: np.ndarray, pb: np.ndarray, domain: str) -> dict:
    draws = np.random.default_rng(1).integers(0, len(gold), (RESAMPLES, len(gold)))
    out = {}
    metrics = [("macro_f1", macro_f1)]
    if domain == "conversation":
        metrics.append(("weighted_f1", weighted_f1))
    for name, metric in metrics:
        diff = np.array([metric(gold[i], pb[i]) - metric(gold[i], pa[i]) for i in draws])
        out[name] = {
            "difference": round(metric(gold, pb) - metric(gold, pa), 4),
            "ci95": np.percentile(diff, [2.5, 97.5]).round(4).tolist(),
            "share_not_better": round(float((diff <= 0).mean()), 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="the reference artefact folder")
    parser.add_argument("b", type=Path, help="the candidate artefact folder")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args(argv)
    names, fine = label_tables(args.data / "goemotions")
    dev = {
        "conversation": meld(args.data / "meld", "dev"),
        "comments": goemotions(args.data / "goemotions", "dev", names, fine, single_only=True),
    }
    report: dict = {}
    for domain, corpus in dev.items():
        gold = corpus.y
        preds = {}
        for tag, folder in (("A", args.a), ("B", args.b)):
            logits = raw_logits(folder, domain, corpus.texts)
            offsets = fit_offsets(logits, objective(domain, gold))
            before = np.argmax(logits, axis=1)
            after = np.argmax(logits + offsets, axis=1)
            preds[tag] = (before, after)
            report[f"{domain} {tag}"] = {
                "before offsets": scores(gold, before, domain),
                "dev offsets": scores(gold, after, domain),
                "split-half offsets": split_half(logits, gold, domain),
            }
        report[f"{domain} B-A before offsets"] = bootstrap(
            gold, preds["A"][0], preds["B"][0], domain
        )
        report[f"{domain} B-A dev offsets"] = bootstrap(gold, preds["A"][1], preds["B"][1], domain)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
