import json

import numpy as np
import pytest

from emoapp.core.errors import UnmappedLabelsError
from emoapp.core.labelmap import GOEMOTIONS_EKMAN, build_label_map, normalise
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX
from tests.conftest import REPO


def test_canonical_labels_are_exactly_the_seven():
    assert CANONICAL_LABELS == (
        "neutral",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgusted",
        "surprised",
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("joy", "happy"),
        ("hap", "happy"),
        ("ang", "angry"),
        ("fear", "fearful"),
        ("calm", "neutral"),
        ("contempt", "disgusted"),
        ("Surprise", "surprised"),
        ("neu", "neutral"),
        ("sadness", "sad"),
        ("admiration", "happy"),
        ("nervousness", "fearful"),
        ("confusion", "surprised"),
        ("annoyance", "angry"),
    ],
)
def test_aliases(raw, expected):
    lm = build_label_map("m", {0: raw, 1: "neutral"})
    assert lm.targets[0] == expected


def test_iemocap_four_classes_mask_and_mapping():
    lm = build_label_map("superb", {0: "neu", 1: "hap", 2: "ang", 3: "sad"})
    assert [CANONICAL_LABELS[i] for i in np.flatnonzero(lm.mask)] == [
        "neutral",
        "happy",
        "sad",
        "angry",
    ]
    p = lm.apply(np.array([0.1, 0.2, 0.3, 0.4]))
    assert p[LABEL_INDEX["angry"]] == pytest.approx(0.3)
    assert p[LABEL_INDEX["disgusted"]] == 0.0
    assert p.sum() == pytest.approx(1.0)


def test_many_to_one_sums_and_ignored_mass_is_dropped():
    lm = build_label_map("m", ["calm", "neutral", "happy", "<unk>"])
    p = lm.apply(np.array([0.2, 0.2, 0.1, 0.5]))
    assert p[LABEL_INDEX["neutral"]] == pytest.approx(0.8)
    assert p[LABEL_INDEX["happy"]] == pytest.approx(0.2)
    assert lm.targets[3] == "ignore"


def test_all_mass_on_ignored_labels_gives_uniform_over_mask():
    lm = build_label_map("m", ["happy", "sad", "other"])
    p = lm.apply(np.array([0.0, 0.0, 1.0]))
    assert p[LABEL_INDEX["happy"]] == pytest.approx(0.5)
    assert p[LABEL_INDEX["sad"]] == pytest.approx(0.5)


def test_unmapped_labels_are_listed():
    with pytest.raises(UnmappedLabelsError) as info:
        build_label_map("sentiment", {0: "positive", 1: "negative", 2: "neutral"})
    assert info.value.unmapped == ["positive", "negative"]
    assert "positive, negative" in str(info.value)


def test_overrides_win_and_are_validated():
    lm = build_label_map("s", ["positive", "negative"], {"positive": "happy", "negative": "sad"})
    assert lm.targets == ("happy", "sad")
    lm2 = build_label_map("m", ["joy", "love"], {"love": "ignore"})
    assert lm2.targets == ("happy", "ignore")
    with pytest.raises(ValueError, match="not one of"):
        build_label_map("m", ["joy"], {"joy": "ecstatic"})


def test_goemotions_all_28_labels_map_with_the_official_ekman_groups():
    data = REPO.parent / "shared" / "data" / "goemotions"
    if (data / "ekman_mapping.json").exists():
        official = json.loads((data / "ekman_mapping.json").read_text())
        assert {k: sorted(v) for k, v in official.items()} == {
            k: sorted(v) for k, v in GOEMOTIONS_EKMAN.items()
        }
        labels = (data / "emotions.txt").read_text().split()
    else:
        labels = [m for members in GOEMOTIONS_EKMAN.values() for m in members] + ["neutral"]
    lm = build_label_map("goemotions", labels)
    assert lm.mask.all()
    assert dict(lm.describe())["grief"] == "sad"


def test_normalise():
    assert normalise(" <Pleasant Surprise> ") == "pleasant_surprise"
    assert normalise("no-emotion") == "no_emotion"
