"""Compare text artefacts built with different training settings under the out-of-fold
offsets protocol: one row per artefact folder (written by ``train_embedded_text.py
--out DIR`` with ``--c``, ``--meld-share``, ``--domain-copy``, ``--class-weight-power``
or ``--term-weighting``), from the figures the training script wrote to each
``meta.json``.

Columns (all from ``meta.json``):
- MELD train out-of-fold, offsets chosen on those same logits (9,989 utterances; the
  offsets are 7 numbers, so little optimism) and before any offsets;
- MELD dev with the offsets chosen on MELD train's out-of-fold logits only: MELD dev
  chose nothing in the decision rule (it chose between the rows of this table);
- GoEmotions dev (the comments domain, offsets chosen on it: optimistic, for the
  guard that the comments domain is kept).

Usage::

    python scripts/compare_text_settings.py DIR [DIR ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def row(folder: Path) -> str:
    """The table row of the artefact in ``folder``."""
    meta = json.loads((folder / "meta.json").read_text())
    training = meta["training"]
    protocols = training.get("offset_protocols")
    if not protocols:
        raise SystemExit(f"{folder}: no offset_protocols in meta.json (built with --cross-fit 0?)")
    none, own = protocols["oof_before_offsets"], protocols["oof_own_offsets"]
    dev = protocols["dev_offsets_from_train_oof"]
    goe = meta["dev"]["goemotions_dev"]["calibrated"]
    power = training["class_weights"].rsplit("**", 1)[-1].strip()
    return (
        f"| {folder.name} | {training['C']} | {training['meld_share']} "
        f"| {training['domain_copy']} | {power} "
        f"| {none['macro_f1']:.3f} / {none['weighted_f1']:.3f} "
        f"| {own['macro_f1']:.3f} / {own['weighted_f1']:.3f} "
        f"| {dev['macro_f1']:.3f} / {dev['weighted_f1']:.3f} / {dev['ece']:.3f} "
        f"| {goe['macro_f1']:.3f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print(
        "| artefact | C | MELD share | domain copy | class-weight power "
        "| MELD train OOF macro / weighted F1, no offsets | the same, own offsets "
        "| MELD dev macro / weighted F1 / ECE, offsets from train OOF "
        "| GoEmotions dev macro-F1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in args.folders:
        print(row(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
