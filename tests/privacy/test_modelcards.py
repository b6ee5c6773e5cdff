"""Model cards: registry facts (training data, licence, limits, reported accuracy) and the
label mapping applied, for curated models; a plain "not curated" for the rest."""

from __future__ import annotations

from emoapp.core.messages import Modality
from emoapp.encoders.base import EncoderInfo
from emoapp.privacy.modelcards import (
    DISPLAYED_NOT_FELT,
    format_model_card,
    format_model_cards,
    model_card,
)
from emoapp.registry import find_entry


def test_a_baseline_card_carries_the_registry_facts_and_its_labels():
    from emoapp.encoders.baseline import SmileFaceEncoder

    card = model_card(SmileFaceEncoder().info())
    entry = find_entry("baseline/face-smile")
    assert card.curated and card.baseline
    assert (card.training_data, card.license, card.limits, card.reported) == (
        entry.training_data,
        entry.license,
        entry.limits,
        entry.reported,
    )
    assert card.can_express == ["neutral", "happy"]
    assert "sad" in card.cannot_express
    text = format_model_card(card)
    assert f"**Licence:** {entry.license}" in text
    assert f"**Known limits and caveats:** {entry.limits}" in text
    assert "- happy → happy" in text and "Cannot say: sad" in text
    # Its "neutral" is really "no smile": the card says what it cannot tell apart.
    assert card.cannot_tell_apart == [
        ["neutral", "sad", "angry", "fearful", "disgusted", "surprised"]
    ]
    assert "Cannot tell apart: neutral, sad, angry, fearful, disgusted, surprised" in text


def test_a_hub_model_is_found_by_its_id_and_shows_its_mapping():
    info = EncoderInfo(
        Modality.VOICE,
        "ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition",
        "cpu",
        "float32",
        False,
        label_mapping=[("calm", "neutral"), ("angry", "angry"), ("neutral", "neutral")],
        revision="ae4b56afd7ef4f721d10cca53d639fc76b94b5ac",
        source="ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition",
    )
    card = model_card(info)
    assert card.curated and "RAVDESS" in card.training_data and "CC BY-NC-SA" in card.training_data
    text = format_model_card(card)
    assert "- calm → neutral" in text
    assert "**Reported accuracy:** accuracy 0.822" in text


def test_a_model_outside_the_registry_says_so():
    info = EncoderInfo(
        Modality.TEXT,
        "/models/mine",
        "cpu",
        "float32",
        False,
        [("joy", "happy")],
        None,
        "/models/mine",
    )
    card = model_card(info)
    assert not card.curated and card.license == ""
    text = format_model_cards([card])
    assert text.startswith(f"**{DISPLAYED_NOT_FELT}**")
    assert "not in emoapp's curated registry" in text and "- joy → happy" in text
    assert format_model_cards([]).endswith("No model is loaded yet.")
