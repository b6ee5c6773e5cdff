"""Choose how the embedded face pair pools its two members, on FER2013 *train* only.

    python scripts/choose_face_pair_weights.py [--data ../shared/data/fer2013/train.tar.gz]
        [--n 4000] [--seed 0] [--write]

A seeded sample of ``--n`` FER2013 train images (never the test split) goes through both
members of ``embedded/face-pair`` exactly as ``emoapp evaluate`` sends it (each image is
one face crop: ``FaceConfig(detector="image")``), and through the mini-Xception a second
time with aligned crops, to see whether it prefers the old box crop. Then the pooling:
for the linear and the log-linear rule and the mini-Xception's share ``w`` in 0, 0.05,
..., 1 (the MobileFaceNet's is ``1 - w``), each face's two posteriors are pooled with
:func:`emoapp.encoders.embedded.face.pool_members` (which is
:func:`emoapp.core.fusion.pool_batch`), and the rule and share with the best **macro
recall** (the mean of the seven per-class recalls: FER2013 has 16 times more happy than
disgusted faces, and the pair is there to see the rare classes) are chosen; ties go to
the share nearest 0.5. ``--write`` records them in ``models/embedded/face-pair/meta.json``
(with the table) and rewrites its checksums; ``--write --shares equal`` records the
table but keeps equal shares and the linear pool (what the shipped pair does: on the
FER2013 copy we hold both members are near chance, see docs/guide/faces.md, so the
table is no ground to prefer either).

The mini-Xception was trained on FER2013 train, so on this sample it is scored on its
own training images and looks better than it is; the choice therefore leans towards it,
not away. Predictions are cached under /tmp/emoapp-cache/faces/.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = Path("/tmp/emoapp-cache/faces")


def _images(data: Path, n: int, seed: int) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    import cv2

    from emoapp.core.taxonomy import LABEL_INDEX
    from emoapp.evaluation.datasets import read_archive_file, read_fer2013

    dataset = read_fer2013(data)
    if "test" in dataset.name:
        raise SystemExit("choose on the train split, never on test")
    items = sorted(
        random.Random(seed).sample(dataset.items, min(n, len(dataset.items))), key=lambda i: i.id
    )
    images = []
    for item in items:
        assert item.video is not None
        packed = read_archive_file(item.video)
        assert packed is not None
        grey = cv2.imdecode(np.frombuffer(packed, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
        images.append(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB))
    gold = np.array([LABEL_INDEX[item.label] for item in items])
    return [item.id for item in items], images, gold


def _member_probs(model: str, images: list[np.ndarray], crop: str | None = None) -> np.ndarray:
    from emoapp.core.messages import Modality, ModalityPrediction, VideoFrame
    from emoapp.encoders.embedded.face import MiniXceptionFaceEncoder, member_encoder
    from emoapp.encoders.face import FaceConfig
    from emoapp.registry import resolve_model

    spec = resolve_model(Modality.FACE, model)
    assert spec is not None
    encoder = member_encoder(spec, FaceConfig(detector="image"))
    encoder.load()
    if crop is not None:
        assert isinstance(encoder, MiniXceptionFaceEncoder)
        encoder.crop = crop
    out = []
    for start in range(0, len(images), 64):
        frames = [VideoFrame(0.0, im, i) for i, im in enumerate(images[start : start + 64])]
        for output in encoder.encode(frames):
            assert isinstance(output, ModalityPrediction)
            out.append(output.probs)
    return np.asarray(out)


def macro_recall(probs: np.ndarray, gold: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Macro recall, accuracy and the per-class recalls of ``probs`` (N x 7)."""
    pred = probs.argmax(axis=1)
    recalls = np.array(
        [np.mean(pred[gold == k] == k) if np.any(gold == k) else np.nan for k in range(7)]
    )
    return float(np.nanmean(recalls)), float(np.mean(pred == gold)), recalls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/fer2013/train.tar.gz"
    )
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    parser.add_argument(
        "--shares",
        choices=("chosen", "equal"),
        default="chosen",
        help="what --write records as the members' shares: the rule and share chosen "
        "here, or equal shares with the linear pool (the table is recorded either way)",
    )
    args = parser.parse_args()

    from emoapp.core.observation import DEFAULT_OBSERVATION  # noqa: F401 (the pool's expansion)
    from emoapp.core.taxonomy import CANONICAL_LABELS
    from emoapp.encoders.embedded.face import pool_members

    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"pair-train-n{args.n}-s{args.seed}.npz"
    if cached.is_file():
        held = np.load(cached)
        gold, mx_box, mx_aligned, mfn = (
            held["gold"],
            held["mx_box"],
            held["mx_aligned"],
            held["mfn"],
        )
    else:
        _, images, gold = _images(args.data, args.n, args.seed)
        print(f"{len(images)} images read", flush=True)
        mx_box = _member_probs("embedded/face-minixception", images, "box")
        print("mini-Xception (box) done", flush=True)
        mx_aligned = _member_probs("embedded/face-minixception", images, "aligned")
        print("mini-Xception (aligned) done", flush=True)
        mfn = _member_probs("embedded/face-mobilefacenet", images)
        np.savez(cached, gold=gold, mx_box=mx_box, mx_aligned=mx_aligned, mfn=mfn)

    print(f"FER2013 train sample: {len(gold)} images (seed {args.seed})")
    print("per-class recall order:", ", ".join(CANONICAL_LABELS))
    for name, p in (
        ("mini-Xception, box crop", mx_box),
        ("mini-Xception, aligned", mx_aligned),
        ("MobileFaceNet, aligned", mfn),
    ):
        macro, acc, rec = macro_recall(p, gold)
        print(
            f"{name:26s} macro recall {macro:.3f} accuracy {acc:.3f} "
            f"recalls {np.round(rec, 3).tolist()}"
        )
    crop = (
        "box" if macro_recall(mx_box, gold)[0] >= macro_recall(mx_aligned, gold)[0] else "aligned"
    )
    mx = mx_box if crop == "box" else mx_aligned
    mask = np.ones(7, dtype=bool)
    table = []
    for rule in ("weighted", "product"):
        for w in np.round(np.arange(0.0, 1.0001, 0.05), 2):
            pooled = pool_members([mx, mfn], [mask, mask], np.array([w, 1.0 - w]), rule)
            macro, acc, rec = macro_recall(pooled, gold)
            table.append(
                {
                    "rule": rule,
                    "minixception": float(w),
                    "macro_recall": round(macro, 4),
                    "accuracy": round(acc, 4),
                    "recall": [round(float(r), 4) for r in rec],
                }
            )
    best = max(table, key=lambda r: (r["macro_recall"], -abs(r["minixception"] - 0.5)))
    for row in table:
        mark = " <- chosen" if row is best else ""
        print(
            f"{row['rule']:8s} w_minixception {row['minixception']:.2f} "
            f"macro recall {row['macro_recall']:.3f} accuracy {row['accuracy']:.3f}{mark}"
        )
    print(
        f"chosen: rule {best['rule']}, mini-Xception share {best['minixception']:.2f}, "
        f"MobileFaceNet {1 - best['minixception']:.2f}; mini-Xception crop: {crop}"
    )
    if args.write:
        from emoapp.encoders.embedded.artefacts import write_checksums

        folder = ROOT / "models/embedded/face-pair"
        meta = json.loads((folder / "meta.json").read_text())
        share = best["minixception"] if args.shares == "chosen" else 0.5
        meta["members"] = [
            {"model": "embedded/face-minixception", "weight": share},
            {"model": "embedded/face-mobilefacenet", "weight": round(1.0 - share, 2)},
        ]
        meta["rule"] = best["rule"] if args.shares == "chosen" else "weighted"
        meta["chosen_by"] = {
            "shares": args.shares,
            "best_on_this_sample": {"rule": best["rule"], "minixception": best["minixception"]},
            "script": "scripts/choose_face_pair_weights.py",
            "data": f"FER2013 train, a seeded sample of {len(gold)} images (seed {args.seed}); "
            "never the test split",
            "criterion": "macro recall (mean of the seven per-class recalls), "
            "ties to the share nearest 0.5",
            "minixception_crop": crop,
            "table": [{k: v for k, v in row.items() if k != "recall"} for row in table],
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        write_checksums(folder)
        print(f"written to {folder / 'meta.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
