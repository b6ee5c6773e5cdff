#!/usr/bin/env python
"""Compare two text artefacts under the out-of-fold offset protocol of revision 2.1.0,
with paired bootstraps.

    .venv/bin/python scripts/compare_text_oof.py A_DIR B_DIR --cache DIR [--data ../shared/data]

Both artefacts must have been written by ``scripts/train_embedded_text.py --cross-fit 5
--cache DIR`` (the same ``DIR``): their MELD train out-of-fold logits are read back from
the cache (the folder named after each one's data and settings). For the conversation
domain it prints, for A and B:

- MELD dev with the offsets chosen on MELD train out-of-fold only (``meta.json``
  ``training.offset_protocols``), and the paired bootstrap of B minus A there and before
  any offsets;
- the same on MELD dev with its punctuation removed and lower-cased (:func:`unpunctuated`:
  what a speech recogniser without punctuation gives the text model); for an artefact
  with a ``speech`` domain also that domain on the same text (its offsets from the
  unpunctuated copy of MELD train out-of-fold only) and the paired bootstrap of it minus
  the conversation domain;
- MELD train out-of-fold, each fold's offsets chosen on the other folds' out-of-fold
  logits (nested, so no item chooses its own offsets), and the paired bootstrap of B
  minus A there and before any offsets. These bootstraps resample utterances, not
  dialogues, so their intervals are too narrow.

Reads no test split.
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

from compare_text_artefacts import raw_logits  # noqa: E402
from train_embedded_text import (  # noqa: E402
    SEED,
    cache_key,
    dialogue_folds,
    fit_offsets,
    goemotions,
    label_tables,
    meld,
    objective,
    paired_bootstrap,
    unpunctuated,
)

from emoapp.evaluation.metrics import macro_f1, weighted_f1  # noqa: E402

FOLDS = 5


def speech_domain_logits(folder: Path, texts: list[str]) -> np.ndarray:
    """The speech domain's logits (its shipped prior included, before the temperature)."""
    from emoapp.core.messages import Modality
    from emoapp.encoders.embedded.text import NgramTextEncoder
    from emoapp.encoders.heard import SPEECH_DOMAIN
    from emoapp.registry import ModelSpec

    encoder = NgramTextEncoder(ModelSpec(Modality.TEXT, str(folder), backend="embedded"))
    encoder.load()
    return np.array([encoder.logits(t, (), SPEECH_DOMAIN) for t in texts])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args(argv)
    names, fine = label_tables(args.data / "goemotions")
    goe = goemotions(args.data / "goemotions", "train", names, fine, single_only=False)
    train = meld(args.data / "meld", "train")
    dev = meld(args.data / "meld", "dev")
    assert train.groups is not None
    folds = dialogue_folds(train.groups, FOLDS, SEED)

    def load(folder: Path) -> dict:
        meta = json.loads((folder / "meta.json").read_text())
        protocols = meta["training"].get("offset_protocols")
        if protocols is None:
            raise SystemExit(f"{folder}: not written with --cross-fit")
        training = meta["training"]
        setting = (
            training["meld_share"],
            training["C"],
            training["domain_copy"],
            float(training["class_weights"].rsplit("** ", 1)[1]),
            training.get("term_weighting", 0.0),
        )
        cache = args.cache / cache_key(
            goe,
            train,
            training.get("vector_scale", 0.0),
            setting,
            training.get("term_weights_from", "both"),
            training.get("punctuation_scale", 0.0),
        )
        oof = np.full((len(train.y), 7), np.nan)
        for k in range(FOLDS):
            stored = cache / f"fold{k}of{FOLDS}.npz"
            if not stored.is_file():
                raise SystemExit(f"{stored}: not in the cache (train with --cache {args.cache})")
            with np.load(stored) as saved:
                oof[saved["held"]] = saved["logits"]
        carried = protocols["dev_offsets_from_train_oof"]
        off = np.array(list(carried["offsets"].values()))
        logits = raw_logits(folder, "conversation", dev.texts)
        bare_texts = [unpunctuated(t) for t in dev.texts]
        bare = raw_logits(folder, "conversation", bare_texts)
        bare_pred = (bare + off).argmax(axis=1)
        speech = meta["training"].get("speech_domain")
        speech_pred = None
        if speech is not None:  # its shipped offsets out, those from train out-of-fold in
            shipped = np.array(list(speech["logit_offsets"].values()))
            honest = speech["dev_unpunctuated_offsets_from_train_oof"]
            carried_speech = np.array(list(honest["offsets"].values()))
            speech_logits = speech_domain_logits(folder, bare_texts) - shipped + carried_speech
            speech_pred = speech_logits.argmax(axis=1)
            print(
                f"{folder}: MELD dev without punctuation read as speech, offsets from train "
                f"out-of-fold: macro_f1 {macro_f1(dev.y, speech_pred):.4f}, weighted_f1 "
                f"{weighted_f1(dev.y, speech_pred):.4f}; speech minus conversation there: "
                + json.dumps(paired_bootstrap(dev.y, speech_pred, [bare_pred]))
            )
        nested = np.empty(len(train.y), dtype=np.int64)
        for k in range(FOLDS):
            held = folds == k
            chosen = fit_offsets(oof[~held], objective("conversation", train.y[~held]))
            nested[held] = (oof[held] + chosen).argmax(axis=1)
        print(
            f"{folder}: MELD dev, offsets from train out-of-fold: "
            + ", ".join(
                f"{m} {carried[m]}" for m in ("accuracy", "macro_f1", "weighted_f1", "ece", "nll")
            )
            + f"; MELD dev without punctuation, the same offsets: macro_f1 "
            f"{macro_f1(dev.y, bare_pred):.4f}, weighted_f1 {weighted_f1(dev.y, bare_pred):.4f}"
            + f"; MELD train out-of-fold, nested offsets: macro_f1 "
            f"{macro_f1(train.y, nested):.4f}, weighted_f1 {weighted_f1(train.y, nested):.4f}"
        )
        return {
            "dev": (logits + off).argmax(axis=1),
            "dev_none": logits.argmax(axis=1),
            "dev_bare": bare_pred,
            "oof": nested,
            "oof_none": oof.argmax(axis=1),
        }

    a, b = load(args.a), load(args.b)
    for name, gold, key in (
        ("MELD dev, offsets from train out-of-fold", dev.y, "dev"),
        ("MELD dev, no offsets", dev.y, "dev_none"),
        ("MELD dev without punctuation, offsets from train out-of-fold", dev.y, "dev_bare"),
        ("MELD train out-of-fold, nested offsets", train.y, "oof"),
        ("MELD train out-of-fold, no offsets", train.y, "oof_none"),
    ):
        print(f"B - A, {name}: {json.dumps(paired_bootstrap(gold, b[key], [a[key]]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
