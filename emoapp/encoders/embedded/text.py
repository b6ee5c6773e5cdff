"""The embedded text model: TF-IDF n-grams and a linear softmax classifier trained by
this project on GoEmotions (``scripts/train_embedded_text.py``), run with numpy only.

Features reproduce scikit-learn's ``TfidfVectorizer`` exactly (the training script fits
with it; ``tests/encoders/test_embedded_text.py`` compares the two), one block per
vectoriser, concatenated in order:

- ``word`` blocks: the text lower-cased, tokens ``(?u)\\b\\w\\w+\\b``, n-grams of
  consecutive tokens joined by a space;
- ``char_wb`` blocks: the lower-cased text split on whitespace, each word padded with a
  space either side, its character n-grams (a padded word shorter than ``n`` counts once,
  whole, and ends the n loop, as scikit-learn does);

then per block: counts of the n-grams in the vocabulary, ``1 + log(count)`` when
``sublinear_tf``, times the block's idf, and L2-normalised. The logits are
``x @ coef.T + intercept``; probabilities are ``softmax(logits / temperature)`` with the
temperature fitted on the dev split.

The artefact folder holds ``weights.npz`` (``coef`` labels x features, ``intercept``,
and per block ``idf_B`` and ``vocab_B``: the block's n-grams in column order, UTF-8,
joined by ``\\n``) written deterministically, and ``meta.json`` with ``labels``,
``blocks`` (the vectoriser settings) and ``temperature``.

Because the model is linear, the evidence for a label splits exactly over the words of
the text: :meth:`GoEmotionsTextEncoder.attributions`.
"""

from __future__ import annotations

import math
import re
import time
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from emoapp.core.errors import ModelLoadError
from emoapp.core.messages import EncoderOutput, Modality, NoPrediction, TextEntry
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.encoders.embedded.base import EmbeddedEncoder

WEIGHTS = "weights.npz"
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
EMPTY_TEXT = "empty text"

_ANALYZERS = ("word", "char_wb")


@dataclass(frozen=True)
class Block:
    """One vectoriser's settings (a ``meta.json`` ``blocks`` entry)."""

    name: str
    analyzer: str
    ngram_range: tuple[int, int]
    sublinear_tf: bool = True
    lowercase: bool = True

    @classmethod
    def from_meta(cls, raw: Mapping[str, Any]) -> Block:
        try:
            block = cls(
                name=str(raw["name"]),
                analyzer=str(raw["analyzer"]),
                ngram_range=(int(raw["ngram_range"][0]), int(raw["ngram_range"][1])),
                sublinear_tf=bool(raw.get("sublinear_tf", True)),
                lowercase=bool(raw.get("lowercase", True)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelLoadError(f"malformed feature block in meta.json: {raw!r}") from exc
        if block.analyzer not in _ANALYZERS:
            raise ModelLoadError(f"unknown analyzer {block.analyzer!r} (known: {_ANALYZERS})")
        low, high = block.ngram_range
        if not 1 <= low <= high:
            raise ModelLoadError(f"bad ngram_range {block.ngram_range} in meta.json")
        if raw.get("token_pattern", TOKEN_PATTERN) != TOKEN_PATTERN:
            raise ModelLoadError("only scikit-learn's default token_pattern is supported")
        return block

    def to_meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "sublinear_tf": self.sublinear_tf,
            "lowercase": self.lowercase,
            "token_pattern": TOKEN_PATTERN,
            "norm": "l2",
            "smooth_idf": True,
        }


_TOKEN_RE = re.compile(TOKEN_PATTERN)


def words_of(text: str, lowercase: bool = True) -> list[str]:
    """The whitespace-separated words the features are computed over (and attributed
    to), lower-cased like the features."""
    return (text.lower() if lowercase else text).split()


def block_ngrams(block: Block, words: Sequence[str]) -> list[tuple[str, tuple[int, ...]]]:
    """Every n-gram occurrence of ``block`` in a text given as its (lower-cased)
    whitespace words, each with the indices of the words it comes from; in the order
    scikit-learn's analyzer produces them."""
    low, high = block.ngram_range
    out: list[tuple[str, tuple[int, ...]]] = []
    if block.analyzer == "char_wb":
        for i, word in enumerate(words):
            padded = f" {word} "
            size = len(padded)
            for n in range(low, high + 1):
                offset = 0
                out.append((padded[offset : offset + n], (i,)))
                while offset + n < size:
                    offset += 1
                    out.append((padded[offset : offset + n], (i,)))
                if offset == 0:  # a padded word shorter than n counts once
                    break
        return out
    tokens = [(token, i) for i, word in enumerate(words) for token in _TOKEN_RE.findall(word)]
    for n in range(low, high + 1):
        for start in range(len(tokens) - n + 1):
            span = tokens[start : start + n]
            out.append((" ".join(t for t, _ in span), tuple(sorted({i for _, i in span}))))
    return out


@dataclass(frozen=True)
class _BlockWeights:
    block: Block
    vocab: dict[str, int]  # n-gram -> column in the whole feature vector
    idf: np.ndarray  # per column of this block
    offset: int  # the block's first column


class GoEmotionsTextEncoder(EmbeddedEncoder):
    """Emotion of English text from TF-IDF n-grams and a softmax classifier trained on
    GoEmotions (Ekman groups plus neutral). numpy only; about a millisecond a sentence."""

    modality: ClassVar[Modality] = Modality.TEXT

    def _load_artefact(self, folder: Path, meta: dict[str, Any]) -> None:
        arrays = _read_npz(folder / WEIGHTS)
        labels = list(meta["labels"])
        try:
            coef = np.asarray(arrays["coef"], dtype=np.float64)
            intercept = np.asarray(arrays["intercept"], dtype=np.float64)
            temperature = float(meta.get("temperature", 1.0))
            raw_blocks = meta["blocks"]
        except KeyError as exc:
            raise ModelLoadError(f"{folder} lacks {exc} (weights.npz or meta.json)") from exc
        if not (math.isfinite(temperature) and temperature > 0):
            raise ModelLoadError(f"{folder / 'meta.json'}: temperature must be positive")
        blocks: list[_BlockWeights] = []
        offset = 0
        for raw in raw_blocks:
            block = Block.from_meta(raw)
            try:
                vocab_bytes = np.asarray(arrays[f"vocab_{block.name}"], dtype=np.uint8)
                idf = np.asarray(arrays[f"idf_{block.name}"], dtype=np.float64)
            except KeyError as exc:
                raise ModelLoadError(f"{folder / WEIGHTS} lacks {exc}") from exc
            terms = vocab_bytes.tobytes().decode("utf-8").split("\n")
            if len(terms) != len(idf) or len(set(terms)) != len(terms):
                raise ModelLoadError(
                    f"{folder / WEIGHTS}: block {block.name!r} has {len(terms)} terms "
                    f"(distinct: {len(set(terms))}) for {len(idf)} idf values"
                )
            vocab = {term: offset + j for j, term in enumerate(terms)}
            blocks.append(_BlockWeights(block, vocab, idf, offset))
            offset += len(terms)
        if coef.shape != (len(labels), offset) or intercept.shape != (len(labels),):
            raise ModelLoadError(
                f"{folder / WEIGHTS}: coef {coef.shape} / intercept {intercept.shape} do not "
                f"match {len(labels)} labels and {offset} features"
            )
        self._blocks = blocks
        self._coef_t = np.ascontiguousarray(coef.T)  # features x labels
        self._intercept = intercept
        self.temperature = temperature
        self.raw_labels = labels
        self.n_features = offset

    # -- features --------------------------------------------------------------------

    def _occurrences(self, text: str) -> tuple[list[str], list[tuple[int, tuple[int, ...]]]]:
        """The text's words and every in-vocabulary feature occurrence (column, words)."""
        words = words_of(text)
        found: list[tuple[int, tuple[int, ...]]] = []
        for bw in self._blocks:
            vocab = bw.vocab
            for gram, owners in block_ngrams(bw.block, words):
                column = vocab.get(gram)
                if column is not None:
                    found.append((column, owners))
        return words, found

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The text's non-zero TF-IDF features: (columns sorted, values)."""
        self.load()
        _, found = self._occurrences(text)
        return self._values(Counter(column for column, _ in found))

    def _values(self, counts: Counter[int]) -> tuple[np.ndarray, np.ndarray]:
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        columns = np.array(sorted(counts), dtype=np.int64)
        tf = np.array([counts[c] for c in columns], dtype=np.float64)
        values = np.empty_like(tf)
        for bw in self._blocks:
            lo, hi = bw.offset, bw.offset + len(bw.idf)
            sel = (columns >= lo) & (columns < hi)
            if not sel.any():
                continue
            t = tf[sel]
            if bw.block.sublinear_tf:
                t = 1.0 + np.log(t)
            v = t * bw.idf[columns[sel] - lo]
            norm = float(np.sqrt(np.dot(v, v)))
            values[sel] = v / norm if norm > 0 else v
        return columns, values

    def logits(self, text: str) -> np.ndarray:
        """Raw-label logits (before the temperature) of one text."""
        columns, values = self.features(text)
        return self._intercept + values @ self._coef_t[columns]

    def probabilities(self, text: str) -> np.ndarray:
        """Calibrated probabilities over the raw labels (``meta.json`` ``labels``)."""
        return _softmax(self.logits(text) / self.temperature)

    # -- the encoder -----------------------------------------------------------------

    def encode(self, items: Sequence[TextEntry | str]) -> list[EncoderOutput]:
        self.load()
        outputs: list[EncoderOutput] = []
        for item in items:
            started = time.perf_counter()
            text, t = (item.text, item.t) if isinstance(item, TextEntry) else (str(item), 0.0)
            if not text.strip():
                outputs.append(NoPrediction(self.modality, t, EMPTY_TEXT, self.model_id))
                continue
            columns, values = self.features(text)
            raw = _softmax((self._intercept + values @ self._coef_t[columns]) / self.temperature)
            outputs.append(
                self.prediction(
                    t,
                    raw,
                    time.perf_counter() - started,
                    t_end=item.end if isinstance(item, TextEntry) else None,
                    detail={"known_features": len(columns)},
                )
            )
        return outputs

    # -- explanations ----------------------------------------------------------------

    def attributions(self, text: str, label: str) -> list[tuple[str, float]]:
        """How much each word of ``text`` moves ``label`` (a raw or canonical label), in
        logit units after the temperature, relative to the mean over all labels (the
        softmax ignores what moves every label alike).

        One ``(word, weight)`` per whitespace-separated word, in text order, with the
        word as written. The split is exact: the weights plus the label's share of the
        intercept sum to the label's centred, tempered logit
        (:meth:`attribution_bias`). A word n-gram spanning two words gives each half;
        repeated n-grams share their (sub-linear) weight equally."""
        self.load()
        k = self._label_index(label)
        shown = text.split()
        words, found = self._occurrences(text)
        if len(shown) != len(words):  # pragma: no cover - lower() never adds whitespace
            shown = words
        counts = Counter(column for column, _ in found)
        columns, values = self._values(counts)
        value_of = dict(zip(columns.tolist(), values.tolist(), strict=True))
        centred = self._coef_t[:, k] - self._coef_t.mean(axis=1)
        weights = np.zeros(len(words))
        for column, owners in found:
            share = value_of[column] / counts[column] * centred[column] / self.temperature
            for owner in owners:
                weights[owner] += share / len(owners)
        return [(word, float(w)) for word, w in zip(shown, weights, strict=True)]

    def attribution_bias(self, label: str) -> float:
        """The part of ``label``'s centred, tempered logit that no word carries."""
        self.load()
        k = self._label_index(label)
        return float((self._intercept[k] - self._intercept.mean()) / self.temperature)

    def _label_index(self, label: str) -> int:
        if label in self.raw_labels:
            return self.raw_labels.index(label)
        assert self.label_map is not None
        matches = [i for i, target in enumerate(self.label_map.targets) if target == label]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(self.raw_labels)
        if label in CANONICAL_LABELS and not matches:
            raise ValueError(f"{self.model_id} cannot express {label!r} (its labels: {known})")
        raise ValueError(f"unknown label {label!r} (labels: {known})")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing from the embedded model") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path} cannot be read: {exc}") from exc


def vocab_array(terms: Sequence[str]) -> np.ndarray:
    """A block's n-grams in column order as one UTF-8 byte array (``\\n``-joined)."""
    joined = "\n".join(terms)
    if any("\n" in term for term in terms):
        raise ValueError("an n-gram contains a newline")
    return np.frombuffer(joined.encode("utf-8"), dtype=np.uint8).copy()
