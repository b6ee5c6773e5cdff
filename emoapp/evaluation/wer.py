"""Word error rate: how far a transcript's words are from the reference words.

WER = (substitutions + deletions + insertions) / number of reference words, with the
counts from a minimum-edit (Levenshtein) alignment of the two word sequences. Words are
compared after :func:`~emoapp.encoders.asr.normalise_words` (lower case, no
punctuation). A corpus WER sums the edits and the reference words over all pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from emoapp.encoders.asr import normalise_words


@dataclass(frozen=True)
class WordErrors:
    """Edit counts between a reference and a hypothesis."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def edits(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """The word error rate (0 when both are empty; inf for words out of nothing)."""
        if self.reference_words == 0:
            return 0.0 if self.edits == 0 else float("inf")
        return self.edits / self.reference_words

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def align_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> WordErrors:
    """Substitutions, deletions and insertions of a minimum-edit alignment (ties broken
    towards substitutions, then deletions)."""
    n, m = len(reference), len(hypothesis)
    # cost[j] and the three counts along the best path to (i, j), row by row.
    prev = [(j, 0, 0, j) for j in range(m + 1)]  # (cost, subs, dels, ins)
    for i in range(1, n + 1):
        row = [(i, 0, i, 0)]
        for j in range(1, m + 1):
            c, s, d, k = prev[j - 1]
            same = reference[i - 1] == hypothesis[j - 1]
            best = (c + (0 if same else 1), s + (0 if same else 1), d, k)
            c, s, d, k = prev[j]
            if c + 1 < best[0]:
                best = (c + 1, s, d + 1, k)
            c, s, d, k = row[j - 1]
            if c + 1 < best[0]:
                best = (c + 1, s, d, k + 1)
            row.append(best)
        prev = row
    _, subs, dels, ins = prev[m]
    return WordErrors(subs, dels, ins, n)


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    return align_counts(normalise_words(reference), normalise_words(hypothesis))


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> WordErrors:
    """Summed edits over (reference, hypothesis) pairs: ``.wer`` is the corpus WER."""
    total = WordErrors(0, 0, 0, 0)
    for reference, hypothesis in pairs:
        total = total + word_errors(reference, hypothesis)
    return total
