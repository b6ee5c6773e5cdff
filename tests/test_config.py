"""The typed configuration (emoapp/config.py): what the command line hands over arrives
whole, and the pure functions turn it into the pipeline's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoapp.config import (
    FusionOptions,
    ModelOptions,
    SourceOptions,
    build_sources,
    choose_models,
    fusion_config,
    parse_weights,
)
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality

FACE, VOICE, TEXT = Modality.FACE, Modality.VOICE, Modality.TEXT
BASELINE = ModelOptions(profile="baseline")


def test_every_window_option_reaches_the_typed_config(tmp_path: Path):
    from emoapp.cli import build_parser
    from emoapp.commands.gui import window_config

    clip = tmp_path / "clip.mp4"
    clip.touch()
    args = build_parser().parse_args([
        "--profile", "cpu", "--profiles-file", "extra.toml", "--face-model", "none",
        "--voice-model", "some/voice@abc", "--device", "cpu", "--dtype", "float32",
        "--models-dir", "/m", "--download",
        "--fusion-rule", "loglinear", "--weights", "face=0.5,text=2", "--smoothing", "1.5",
        "--hysteresis", "0.2",
        "--camera", str(clip), "--mic", "default", "--text-file", "lines.txt",
        "--text-interval", "2", "--camera-size", "640x480", "--camera-fps", "15",
        "--replay-speed", "4", "--loop", "--allow-mic",
        "--settings-file", "s.ini", "--quit-after", "3",
    ])  # fmt: skip
    config = window_config(args)
    assert config.models == ModelOptions(
        profile="cpu",
        profiles_file=Path("extra.toml"),
        models={FACE: "none", VOICE: "some/voice@abc", TEXT: None},
        device="cpu",
        dtype="float32",
        models_dir="/m",
        download=True,
    )
    assert config.fusion == FusionOptions("loglinear", {FACE: 0.5, TEXT: 2.0}, 1.5, 0.2)
    assert config.sources == SourceOptions(
        str(clip), "default", "lines.txt", 2.0, "640x480", 15.0, 4.0, True
    )
    assert config.consent.allowed == [VOICE]
    assert config.settings_file == Path("s.ini") and config.quit_after == 3.0
    # Not given: None, so that the window keeps what it remembered.
    empty = window_config(build_parser().parse_args([]))
    assert empty.models.profile is None and empty.fusion.rule is None
    assert empty.fusion.weights is None and empty.consent.allowed == []


def test_weights_are_parsed_or_refused_in_one_line():
    assert parse_weights("face=1, voice=0.5") == {FACE: 1.0, VOICE: 0.5}
    for bad in ("nose=1", "face", "face=lots"):
        with pytest.raises(EmoappError, match="is not MODALITY=NUMBER"):
            parse_weights(bad)


def test_only_switches_the_other_modalities_off():
    options = ModelOptions(models={VOICE: "some/voice"})
    assert options.only({VOICE, TEXT}).models == {FACE: "none", VOICE: "some/voice", TEXT: None}
    specs = choose_models(BASELINE.only({TEXT})).specs
    assert specs[FACE] is None and specs[VOICE] is None and specs[TEXT] is not None


def test_hand_set_weights_win_over_the_model_priors():
    specs = choose_models(BASELINE).specs
    model = {m: spec.model for m, spec in specs.items() if spec is not None}
    assert len(model) == 3
    priors = fusion_config(BASELINE, FusionOptions())
    assert set(model.values()) <= set(priors.model_reliability)

    config = fusion_config(BASELINE, FusionOptions("product", {FACE: 0.25}, 2.0, 0.1))
    assert config.rule == "product" and config.smoothing_s == 2.0 and config.hysteresis == 0.1
    assert config.reliability[FACE] == 0.25
    assert model[FACE] not in config.model_reliability
    assert model[VOICE] in config.model_reliability
    # Defaults apply only where nothing was given.
    defaulted = fusion_config(BASELINE, FusionOptions(rule="linear"), 1.0, 0.3)
    assert defaulted.rule == "weighted"
    assert defaulted.smoothing_s == 1.0 and defaulted.hysteresis == 0.3


def test_sources_come_from_their_options(tmp_path: Path):
    lines = tmp_path / "lines.txt"
    lines.write_text("hello\n")
    sources = build_sources(SourceOptions(mic="2", text_file=str(lines), text_interval=1.0))
    assert set(sources) == {VOICE, TEXT}
    assert sources[VOICE].is_device and not sources[TEXT].is_device
    assert build_sources(SourceOptions()) == {}
    with pytest.raises(EmoappError, match="--replay-speed"):
        build_sources(SourceOptions(replay_speed=0))
    with pytest.raises(EmoappError, match="no such file"):
        build_sources(SourceOptions(camera=str(tmp_path / "missing.mp4")))
