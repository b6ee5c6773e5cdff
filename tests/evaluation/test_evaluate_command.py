"""`emoapp evaluate` end to end on a small dataset of each format, with tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emoapp.cli import main
from emoapp.registry import profiles, resolve_profile
from tests.evaluation.fixtures import (
    blank_video,
    copy,
    make_cremad,
    make_goemotions,
    make_meld,
    make_ravdess,
    write_csv,
)


def evaluate(*args: object) -> int:
    # The energy gate and 1 s hops keep the voice model's work small on a CPU.
    fast = ["--bootstrap", "50", "--vad", "energy", "--hop", "1", "-q"]
    return main(["evaluate", *(str(a) for a in args), *fast])


def model_flags(tiny_models: dict[str, Path], *modalities: str) -> list[object]:
    """--face-model/--voice-model/--text-model for the named tiny models, 'none' for
    the others."""
    flags: list[object] = []
    for modality in ("face", "voice", "text"):
        flags += [
            f"--{modality}-model",
            tiny_models[modality] if modality in modalities else "none",
        ]
    return flags


def read_metrics(report: Path) -> dict:
    return json.loads((report / "metrics.json").read_text())


def systems(metrics: dict) -> dict[str, dict]:
    return {s["system"]: s for s in metrics["systems"]}


def test_ravdess(tmp_path, tiny_models, samples, capsys):
    root = make_ravdess(tmp_path / "RAVDESS", samples)
    report = tmp_path / "report"
    code = evaluate(
        root, "--report", report, *model_flags(tiny_models, "face", "voice"), "--face-fps", "1"
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "face+voice (fused)" in out
    metrics = read_metrics(report)
    assert metrics["dataset"]["format"] == "ravdess"
    assert metrics["dataset"]["items"] == 4
    assert metrics["dataset"]["groups"] == {"male": 2, "female": 2}
    # the video-only file has no sound, the audio-only file no picture
    assert metrics["coverage"]["face"]["with_input"] == 3
    assert metrics["coverage"]["voice"]["with_input"] == 3
    by_name = systems(metrics)
    assert set(by_name) == {"face", "voice", "face+voice"}
    assert by_name["face+voice"]["n"] == 4  # fusion covers what either modality covers
    assert by_name["voice"]["recall"]["fearful"] is not None
    assert set(by_name["face"]["groups"]) <= {"male", "female"}
    assert metrics["common"]["items"] == 2
    readme = (report / "README.md").read_text()
    assert "## Per group (sex)" in readme
    for name in ("confusion-face-voice.png", "reliability-voice.png", "groups-face.png"):
        assert (report / "plots" / name).stat().st_size > 1000


def test_cremad_groups_by_a_demographic_column(tmp_path, tiny_models, samples):
    root = make_cremad(tmp_path / "CREMA-D", samples)
    report = tmp_path / "report"
    code = evaluate(
        root,
        "--report",
        report,
        *model_flags(tiny_models, "face", "voice"),
        "--group-by",
        "Race",
        "--face-fps",
        "1",
    )
    assert code == 0
    metrics = read_metrics(report)
    assert metrics["dataset"]["group_by"] == "Race"
    assert metrics["dataset"]["labels"] == {"angry": 1, "happy": 1, "neutral": 1}
    assert metrics["coverage"]["face"]["with_input"] == 1  # the one clip with a .flv video
    assert metrics["coverage"]["face"]["predicted"] == 1
    voice = systems(metrics)["voice"]
    assert voice["items"] == 3
    assert set(voice["groups"]) == {"Caucasian", "African American"}


def test_meld_with_some_clips_missing(tmp_path, tiny_models, samples):
    csv_path = make_meld(tmp_path / "MELD.Raw", samples)
    report = tmp_path / "report"
    flags = ["--face-fps", "1", "--group-by", "Speaker"]
    code = evaluate(
        csv_path, "--report", report, *model_flags(tiny_models, "face", "voice", "text"), *flags
    )
    assert code == 0
    metrics = read_metrics(report)
    assert metrics["dataset"]["missing"] == {"face, voice: clip file not found": 2}
    assert metrics["coverage"]["face"]["with_input"] == 1
    assert metrics["coverage"]["text"]["predicted"] == 3
    by_name = systems(metrics)
    assert list(by_name) == [
        "face",
        "voice",
        "text",
        "face+voice",
        "face+text",
        "voice+text",
        "face+voice+text",
    ]
    assert by_name["text"]["n"] == 3 and by_name["face"]["n"] == 1
    assert by_name["face+voice+text"]["n"] == 3
    readme = (report / "README.md").read_text()
    assert "clip file not found: 2" in readme
    assert "### On the 1 items every modality predicted" in readme


def test_csv_manifest_segments_and_abstentions(tmp_path, tiny_models, samples):
    copy(samples / "speech.wav", tmp_path / "media" / "speech.wav")
    blank_video(tmp_path / "media" / "blank.mp4")
    (tmp_path / "media" / "broken.mp4").write_bytes(b"this is not a video")
    manifest = write_csv(
        tmp_path / "manifest.csv",
        ["path", "text", "label", "group", "start", "end"],
        [
            ["media/speech.wav", "", "happy", "a", "0", "2"],
            ["media/speech.wav", "", "sad", "b", "2", "4.5"],
            ["media/blank.mp4", "", "neutral", "a", "", ""],  # no face, no sound
            ["", "I am furious", "angry", "b", "", ""],
            ["media/broken.mp4", "", "angry", "a", "", ""],  # cannot be read
        ],
    )
    report = tmp_path / "report"
    code = evaluate(
        manifest, "--report", report, *model_flags(tiny_models, "face", "voice", "text")
    )
    assert code == 0
    metrics = read_metrics(report)
    face = metrics["coverage"]["face"]
    # the blank video was looked at and has no face: an abstention, not an error
    assert face["with_input"] == 2 and face["predicted"] == 0
    assert any(reason.startswith("no face found") for reason in face["reasons"])
    # the broken file is reported, in one line that names it
    assert any("broken.mp4" in reason for reason in face["reasons"])
    assert metrics["coverage"]["voice"]["with_input"] == 3
    by_name = systems(metrics)
    assert by_name["face"]["n"] == 0
    assert by_name["voice"]["n"] == 2
    assert by_name["face+voice+text"]["n"] == 3  # the blank video abstains everywhere
    cache = [json.loads(line) for line in (report / "predictions.jsonl").read_text().splitlines()]
    assert not any("broken" in r["item"] for r in cache)  # retried next time, not cached
    windows = {r["item"]: r["total"] for r in cache if r["modality"] == "voice"}
    assert sorted(windows.values()) == [1, 1]  # 2 s, 2.5 s: one 2 s window each (1 s hops)


def test_goemotions_fit_writes_a_loadable_profile(tmp_path, tiny_models, capsys):
    root = make_goemotions(tmp_path / "goemotions")
    report = tmp_path / "report"
    code = evaluate(
        root, "--report", report, *model_flags(tiny_models, "text"), "--fit", "--fit-name", "mine"
    )
    assert code == 0
    assert "after --fit" in capsys.readouterr().out
    metrics = read_metrics(report)
    assert metrics["dataset"]["skipped"] == {"labels map to more than one canonical label": 3}
    fit = metrics["fit"]
    assert fit["fit_items"] + fit["held_out_items"] == 24
    model_id = str(tiny_models["text"])
    assert set(fit["temperature"]) == {model_id}
    profile_file = report / "profile.toml"
    profile = profiles(extra_file=profile_file)["mine"]
    assert profile.fusion["temperature"][model_id] == pytest.approx(
        fit["temperature"][model_id], rel=1e-3
    )
    assert set(profile.fusion["reliability"]) == {"face", "voice", "text"}
    specs = resolve_profile("mine", extra_file=profile_file)
    assert specs[next(m for m in specs if m.value == "text")].model == model_id
    assert "## Fitted calibration and fusion" in (report / "README.md").read_text()

    # Evaluating the fitted profile applies what was fitted.
    again = tmp_path / "again"
    code = evaluate(root, "--profiles-file", profile_file, "--profile", "mine", "--report", again)
    assert code == 0
    fusion = read_metrics(again)["fusion"]
    assert fusion["temperature"] == pytest.approx(profile.fusion["temperature"])
    assert "mine" in fusion["source"]


def test_dataset_problems_are_one_line_errors(tmp_path, capsys):
    assert evaluate(tmp_path / "missing") == 2
    assert "does not exist" in capsys.readouterr().err
    root = make_goemotions(tmp_path / "goemotions")
    assert evaluate(root, "--modalities", "face") == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert evaluate(root, "--fit") == 2
    assert "--report" in capsys.readouterr().err


SHARED_GOEMOTIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "goemotions"


@pytest.mark.skipif(not SHARED_GOEMOTIONS.is_dir(), reason="shared GoEmotions data not present")
def test_real_goemotions_slice_with_the_lexicon_baseline(tmp_path):
    pytest.importorskip("emoapp.encoders.baseline")
    report = tmp_path / "report"
    code = evaluate(
        SHARED_GOEMOTIONS,
        "--profile",
        "baseline",
        "--modalities",
        "text",
        "--limit",
        "400",
        "--report",
        report,
    )
    assert code == 0
    metrics = read_metrics(report)
    text = systems(metrics)["text"]
    assert text["n"] == 400 and text["coverage"] == 1.0
    # With labels mapped right, a word lexicon beats always answering the commonest label.
    labels = metrics["dataset"]["labels"]
    assert text["accuracy"] > max(labels.values()) / sum(labels.values())
    low, high = text["accuracy_ci95"]
    assert low < text["accuracy"] < high
