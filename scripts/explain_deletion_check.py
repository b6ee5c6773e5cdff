"""The word-deletion check of the text explanations on GoEmotions dev sentences: for each
sentence (at least ``--min-words`` words), delete its ``k`` top-attributed words, or ``k``
random ones (``--random`` draws), and measure the drop in the predicted label's
probability. Faithful attributions make the first drop much larger than the second.

    python scripts/explain_deletion_check.py [--data ../shared/data] [--model ID]

Prints the mean drops for k = 1, 2, 3. The dev split is used (never test).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", default="embedded/text-conversation")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--min-words", type=int, default=6)
    parser.add_argument("--random", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from emoapp.core.messages import Modality, ModalityPrediction
    from emoapp.core.taxonomy import LABEL_INDEX
    from emoapp.encoders.explain import explainer_for
    from emoapp.encoders.factory import build_encoder
    from emoapp.registry import resolve_model

    path = args.data / "goemotions" / "dev.tsv"
    with path.open(encoding="utf-8", newline="") as f:
        texts = [row[0] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    texts = [t for t in texts if len(t.split()) >= args.min_words][: args.sentences]
    spec = resolve_model(Modality.TEXT, args.model)
    if spec is None:
        raise SystemExit(f"unknown text model {args.model!r}")
    encoder = build_encoder(spec)
    encoder.load()
    explainer = explainer_for(encoder)
    if explainer is None:
        raise SystemExit(f"{args.model} offers no explanation")
    rng = np.random.default_rng(args.seed)
    drops: dict[int, tuple[list[float], list[float]]] = {k: ([], []) for k in (1, 2, 3)}
    for text in texts:
        [prediction] = encoder.encode([text])
        if not isinstance(prediction, ModalityPrediction):
            continue
        explanation = explainer.explain(text, prediction)
        index = LABEL_INDEX[explanation.label]
        words = [w.word for w in explanation.words]
        order = np.argsort([-w.weight for w in explanation.words])
        base = prediction.probs[index]
        for k, (top, rand) in drops.items():
            variants = [[i for i in range(len(words)) if i not in set(order[:k].tolist())]]
            for _ in range(args.random):
                chosen = set(rng.choice(len(words), size=k, replace=False).tolist())
                variants.append([i for i in range(len(words)) if i not in chosen])
            outs = encoder.encode([" ".join(words[i] for i in keep) for keep in variants])
            p = [o.probs[index] if isinstance(o, ModalityPrediction) else 0.0 for o in outs]
            top.append(base - p[0])
            rand.extend(base - q for q in p[1:])
    print(f"{args.model} on {len(texts)} GoEmotions dev sentences of >= {args.min_words} words")
    for k, (top, rand) in drops.items():
        print(
            f"k={k}: top-attributed deleted: mean drop {np.mean(top):.3f}; "
            f"random deleted: {np.mean(rand):.3f}; ratio {np.mean(top) / np.mean(rand):.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
