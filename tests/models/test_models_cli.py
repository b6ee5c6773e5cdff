"""``emoapp models list | pull | verify | info``, against the local fake hub, and the
first-run fallback of ``choose_models`` to the baseline for models not pulled yet."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from emoapp.cli import main
from emoapp.commands.common import add_model_options, model_options
from emoapp.config import choose_models
from emoapp.core.messages import Modality
from emoapp.registry import registry
from tests.models.test_modelstore import FACE_ID, TEXT_ID, VOICE_ID, FakeHub, _closed_port


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path]) -> Iterator[FakeHub]:
    """The fake hub serving the default profile's models, reached through HF_ENDPOINT as
    a user would set it."""
    from huggingface_hub import constants
    from tqdm import tqdm

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tqdm, "monitor_interval", 0)
    with FakeHub() as fake:
        for modality, model_id in (("face", FACE_ID), ("voice", VOICE_ID), ("text", TEXT_ID)):
            fake.add(model_id, registry()[model_id].revision, tiny_models[modality])
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        yield fake


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty models directory, named through EMOAPP_MODELS_DIR."""
    path = tmp_path / "models"
    monkeypatch.setenv("EMOAPP_MODELS_DIR", str(path))
    monkeypatch.setenv("EMOAPP_PROFILES", str(tmp_path / "no-profiles.toml"))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["models", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_registry_profiles_licences_and_what_is_here(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert f"Models directory: {models}" in out
    for model_id, entry in registry().items():
        assert model_id in out
        assert entry.license in out
    assert "built in" in out and "not downloaded" in out
    for name in ("default", "cpu", "baseline"):
        assert f"  {name}: " in out
    # `emoapp models` alone lists too
    assert run(capsys, "--models-dir", str(models))[1] == out


def test_pull_verify_info_round_trip(
    hub: FakeHub, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "info", TEXT_ID)
    assert code == 0
    assert "MELD (Friends TV-show dialogue)" in out and "licence" in out
    assert "not downloaded" in out

    code, out, err = run(capsys, "pull", TEXT_ID, "--no-progress")
    assert code == 0, err
    assert f"{TEXT_ID}@{registry()[TEXT_ID].revision[:12]}: pulled" in out

    code, out, _ = run(capsys, "list")
    text_line = next(line for line in out.splitlines() if line.strip().startswith(TEXT_ID))
    assert "pulled" in text_line

    code, out, _ = run(capsys, "info", TEXT_ID)
    assert "anger    -> angry" in out and "joy      -> happy" in out
    assert "local copy" in out and "pulled" in out

    code, out, _ = run(capsys, "verify")
    assert code == 0 and out.strip().endswith(": ok")

    snapshot = (
        models
        / f"models--{TEXT_ID.replace('/', '--')}"
        / "snapshots"
        / registry()[TEXT_ID].revision
    )
    (snapshot / "config.json").write_text("{}")
    code, out, _ = run(capsys, "verify", TEXT_ID)
    assert code == 1 and "damaged (changed config.json)" in out

    code, out, _ = run(capsys, "pull", TEXT_ID, "--force", "--no-progress")
    assert code == 0 and run(capsys, "verify")[0] == 0


def test_pull_defaults_to_the_default_profile_and_then_the_app_uses_it(
    hub: FakeHub, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_model_options(parser)

    # First run: nothing pulled, so every modality falls back to its built-in (embedded)
    # model, with a note.
    choice = choose_models(model_options(parser.parse_args([])))
    assert all(spec is not None and spec.bundled for spec in choice.specs.values())
    assert len(choice.notes) == 3 and all("emoapp models pull" in n for n in choice.notes)

    code, out, err = run(capsys, "pull", "--no-progress")
    assert code == 0, err
    assert out.count(": pulled") == 3

    choice = choose_models(model_options(parser.parse_args([])))
    assert {m: s.model for m, s in choice.specs.items() if s} == {
        Modality.FACE: FACE_ID,
        Modality.VOICE: VOICE_ID,
        Modality.TEXT: TEXT_ID,
    }
    assert choice.notes == []
    # an explicit --profile is taken as given
    choice = choose_models(model_options(parser.parse_args(["--profile", "baseline"])))
    assert all(s is not None and s.baseline for s in choice.specs.values())


def test_pull_of_the_baseline_downloads_nothing(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "pull", "baseline")
    assert code == 0
    assert "nothing to download" in out and out.count("built in (no download)") == 3
    assert not models.exists()


def test_info_on_a_baseline_shows_its_labels(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "info", "baseline/face-smile")
    assert code == 0
    assert "its own labels: neutral, happy" in out
    assert "cannot express (casts no vote on): sad, angry, fearful, disgusted, surprised" in out


def test_info_on_a_local_directory_reads_its_config(
    models: Path, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "info", str(tiny_models["voice"]))
    assert code == 0
    assert "neu -> neutral" in out and "hap -> happy" in out
    assert "cannot express (casts no vote on): fearful, disgusted, surprised" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("info", "nonsense"), "is not a registry model"),
        (("pull", "nonsense"), "is not a profile"),
        (("verify", "baseline/nothing"), "unknown built-in model"),
        (("info", "embedded/nothing"), "unknown built-in model"),
    ],
)
def test_bad_references_are_one_line_errors(
    models: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("emoapp: error: ") and message in err
    assert err.count("\n") == 1


def test_pull_without_network_is_one_line(
    models: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    code, _, err = run(capsys, "pull", TEXT_ID, "--no-progress")
    assert code == 2 and err.count("\n") == 1
    assert "cannot reach the Hugging Face hub" in err
    assert "models already pulled keep working offline" in err
