"""The curated registry and the profiles: their facts, switching between them, a user
profile pointing at a local directory, and finding the registry in an installed wheel."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.encoders.factory import RuntimeOptions, build_encoder, is_available_locally
from emoapp.registry import (
    TASK_OF_MODALITY,
    RegistryError,
    data_dir,
    find_entry,
    profiles,
    registry,
    resolve_model,
    resolve_profile,
    user_profiles_path,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_user_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test starts without a user profile file (EMOAPP_PROFILES points nowhere)."""
    path = tmp_path / "config" / "profiles.toml"
    monkeypatch.setenv("EMOAPP_PROFILES", str(path))
    return path


def test_every_registry_entry_states_its_facts() -> None:
    entries = registry()
    assert len(entries) >= 9
    for model_id, entry in entries.items():
        assert entry.id == model_id
        assert entry.task == TASK_OF_MODALITY[entry.modality]
        assert entry.license and entry.training_data and entry.architecture and entry.limits
        assert 0 < entry.reliability <= 1
        if entry.baseline:
            assert model_id.startswith("baseline/") and entry.revision is None
        elif entry.backend == "embedded":
            # Shipped in models/embedded/NAME, verified by its own checksums.
            assert model_id.startswith("embedded/") and entry.revision is None
            assert entry.size_mb > 0 and "TODO" not in entry.reported + entry.architecture
        else:
            assert re.fullmatch(r"[0-9a-f]{40}", entry.revision or ""), model_id
            assert entry.size_mb > 0
    assert entries["ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition"].label_overrides == {
        "calm": "neutral"
    }


def test_the_three_built_in_profiles() -> None:
    default = resolve_profile("default")
    cpu = resolve_profile("cpu")
    baseline = resolve_profile("baseline")
    for specs in (default, cpu, baseline):
        assert set(specs) == set(Modality)
        assert all(spec is not None for spec in specs.values())
    assert not any(s.baseline for s in default.values() if s)
    assert all(s.baseline for s in baseline.values() if s)
    assert default[Modality.VOICE].model != cpu[Modality.VOICE].model  # type: ignore[union-attr]
    voice = cpu[Modality.VOICE]
    assert voice is not None and voice.entry is not None
    assert voice.revision == voice.entry.revision and voice.reliability == voice.entry.reliability
    # the baseline needs nothing; the default's hub models are not here in a fresh cache
    assert all(is_available_locally(s) for s in baseline.values() if s)


def test_overrides_switch_one_modality(tmp_path: Path) -> None:
    specs = resolve_profile(
        "default", {Modality.TEXT: "baseline/text-lexicon", Modality.FACE: "none"}
    )
    assert specs[Modality.FACE] is None
    assert specs[Modality.TEXT] is not None and specs[Modality.TEXT].baseline
    assert specs[Modality.VOICE] is not None and not specs[Modality.VOICE].baseline
    pinned = resolve_model(Modality.TEXT, "j-hartmann/emotion-english-distilroberta-base@abc")
    assert pinned is not None and pinned.revision == "abc" and pinned.entry is not None
    other = resolve_model(Modality.TEXT, "someone/some-model@v2")
    assert other is not None and other.entry is None and other.revision == "v2"
    assert (
        find_entry("trpakov/vit-face-expression@abc") is registry()["trpakov/vit-face-expression"]
    )


@pytest.mark.parametrize(
    ("modality", "ref", "message"),
    [
        (Modality.FACE, "j-hartmann/emotion-english-distilroberta-base", "text model, not a face"),
        (Modality.TEXT, "baseline/text-nothing", "unknown baseline"),
        (Modality.TEXT, "pyproject.toml", "is a file"),
    ],
)
def test_bad_model_references(
    modality: Modality, ref: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(RegistryError, match=message):
        resolve_model(modality, ref)


def test_an_unknown_profile_names_the_choices() -> None:
    with pytest.raises(RegistryError, match="unknown profile 'fast'; choose one of baseline, cpu"):
        resolve_profile("fast")


def test_a_user_profile_points_a_modality_at_a_local_directory(
    no_user_profiles: Path,
    tiny_models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The profile file names its model relative to its own folder.
    config = no_user_profiles.parent
    config.mkdir(parents=True)
    shutil.copytree(tiny_models["text"], config / "my-text-model")
    no_user_profiles.write_text(
        "[profiles.mine]\n"
        'description = "my own text model, the baseline elsewhere"\n'
        'face = "baseline/face-smile"\n'
        'voice = "none"\n'
        'text = "./my-text-model"\n'
    )
    monkeypatch.chdir(tmp_path)  # not the profile's folder
    assert user_profiles_path() == no_user_profiles
    mine = profiles()["mine"]
    assert mine.origin == str(no_user_profiles)

    specs = resolve_profile("mine")
    text = specs[Modality.TEXT]
    assert specs[Modality.VOICE] is None and specs[Modality.FACE].baseline  # type: ignore[union-attr]
    assert text is not None and text.is_local_dir
    assert Path(text.model) == (config / "my-text-model").resolve()

    # ...and it loads through the factory with no network (conftest sets HF_HUB_OFFLINE).
    encoder = build_encoder(text, RuntimeOptions(device="cpu"))
    encoder.load()
    [out] = encoder.encode(["what a lovely day"])
    assert isinstance(out, ModalityPrediction)

    # A user profile of a built-in name overrides it; an extra file overrides both.
    extra = tmp_path / "extra.toml"
    extra.write_text('[profiles.default]\ndescription = "x"\ntext = "baseline/text-lexicon"\n')
    assert resolve_profile("default", extra_file=extra)[Modality.FACE] is None
    with pytest.raises(RegistryError, match="does not exist"):
        profiles(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[profiles.bad]\nfase = "x"\n', "unknown keys"),
        ("[profiles.bad\n", "not valid TOML"),
        ("[profiles.bad]\ntext = 3\n", "must be a string"),
    ],
)
def test_a_malformed_user_profile_file_is_one_line(
    no_user_profiles: Path, content: str, message: str
) -> None:
    no_user_profiles.parent.mkdir(parents=True)
    no_user_profiles.write_text(content)
    with pytest.raises(RegistryError, match=message) as info:
        profiles()
    assert "\n" not in str(info.value)


def test_the_registry_is_found_in_an_installed_layout(tmp_path: Path) -> None:
    """A wheel carries models/ as emoapp/_data/models (pyproject force-include); the
    registry must be read from there, with no checkout around."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "emoapp", site / "emoapp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "models", site / "emoapp" / "_data" / "models")
    (site / "emoapp" / "_data" / "models" / "profiles.toml").write_text(
        (REPO / "models" / "profiles.toml").read_text()
        + '\n[profiles.installed]\ndescription = "only in the installed copy"\n'
    )
    script = (
        "from emoapp.registry import data_dir, registry, resolve_profile;"
        "print(data_dir('models'));"
        "print(len(registry()));"
        "print(resolve_profile('installed'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "EMOAPP_PROFILES": str(tmp_path / "none.toml")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert Path(lines[0]) == site / "emoapp" / "_data" / "models"
    assert int(lines[1]) == len(registry())
    assert data_dir("models") == REPO / "models"  # this checkout's


@pytest.mark.slow
@pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import hatchling"], capture_output=True).returncode,
    reason="building the wheel needs hatchling in the environment (no network in tests)",
)
def test_a_built_wheel_carries_the_registry(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("emoapp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "emoapp/_data/models/registry.toml" in names
    assert "emoapp/_data/models/profiles.toml" in names


def _artefact(folder: Path, model_id: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"model_id": model_id, "labels": ["neutral"]}))
    (folder / "checksums.sha256").write_text("")
    return folder


def test_a_held_out_copy_of_an_embedded_recipe_fuses_with_the_shipped_prior(
    tmp_path: Path,
) -> None:
    """A folder written by a training script (e.g. the voice recipe retrained without some
    speakers) takes the reliability prior of the registry entry whose recipe built it, so
    figures measured with it measure the shipped fusion."""
    shipped = registry()["embedded/voice-multicorpus"]
    folder = _artefact(tmp_path / "voice-1-14", "embedded/voice-multicorpus")
    spec = resolve_model(Modality.VOICE, str(folder))
    assert spec is not None and spec.backend == "embedded" and spec.model == str(folder)
    assert spec.recipe == shipped.id and spec.reliability == shipped.reliability
    # the same folder asked to serve another modality, an unknown recipe, a hub model's
    # id or a broken meta.json: no recipe, so the modality's built-in default applies
    assert resolve_model(Modality.TEXT, str(folder)).reliability is None  # type: ignore[union-attr]
    for i, model_id in enumerate(["embedded/nonesuch", "trpakov/vit-face-expression"]):
        other = _artefact(tmp_path / f"other{i}", model_id)
        spec = resolve_model(Modality.FACE, str(other))
        assert spec is not None and spec.recipe is None and spec.reliability is None
    broken = _artefact(tmp_path / "broken", "x")
    (broken / "meta.json").write_text("{not json")
    spec = resolve_model(Modality.VOICE, str(broken))
    assert spec is not None and spec.recipe is None and spec.backend == "embedded"


def test_a_report_names_each_prior_and_where_it_came_from(tmp_path: Path) -> None:
    from emoapp.config import FusionOptions, ModelOptions, describe_priors, fusion_config

    folder = _artefact(tmp_path / "voice-1-14", "embedded/voice-multicorpus")
    models = ModelOptions(profile="embedded", models={Modality.VOICE: str(folder)})
    ids = {Modality.FACE: "embedded/face-pair", Modality.VOICE: str(folder)}
    config = fusion_config(models, FusionOptions())
    text = describe_priors(models, FusionOptions(), config, ids)
    face = registry()["embedded/face-pair"].reliability
    voice = registry()["embedded/voice-multicorpus"].reliability
    assert f"face {face:g} (registry)" in text
    assert f"voice {voice:g} (registry prior of embedded/voice-multicorpus, whose recipe" in text
    by_hand = FusionOptions(weights={Modality.VOICE: 0.9})
    config = fusion_config(models, by_hand)
    assert "voice 0.9 (--weights)" in describe_priors(models, by_hand, config, ids)
