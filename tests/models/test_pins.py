"""Model pins that hold: each hub model of the registry says where its pin was confirmed,
and a pin the hub does not have is one line that offers ``--revision latest``, which
fetches the newest commit, records it in the manifest and in the user's profile file, and
from then on the registry id loads at that commit, offline.

Against the local fake hub of test_modelstore (127.0.0.1)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from emoapp import modelstore
from emoapp.cli import main
from emoapp.core.messages import AudioChunk, Modality, ModalityPrediction
from emoapp.encoders.factory import RuntimeOptions, build_encoder, is_available_locally
from emoapp.registry import (
    RegistryError,
    record_user_revision,
    registry,
    resolve_model,
    user_revisions,
)
from tests.models.test_modelstore import FACE_ID, TEXT_ID, VOICE_ID, FakeHub

NEWER = "c0ffee" + "0" * 34
UNCONFIRMED = {"motheecreator/vit-Facial-Expression-Recognition"}
USER_PROFILES = f"""\
# my own profiles
[profiles.mine]
description = "my mix"
face = "baseline/face-smile"
voice = "{VOICE_ID}"
text = "off"
"""


def test_every_hub_pin_says_where_it_was_confirmed() -> None:
    hub_entries = {i: e for i, e in registry().items() if not e.bundled}
    assert len(hub_entries) == 8
    for model_id, entry in hub_entries.items():
        assert entry.revision and len(entry.revision) == 40
        assert entry.revision_source.startswith(("confirmed: ", "unconfirmed: ")), model_id
        assert entry.pin_confirmed == (model_id not in UNCONFIRMED), model_id
    assert all(registry()[i].sampling_rate == 16000 for i in hub_entries if "wav2vec2" in i)


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with a profile file of their own and an empty models directory."""
    profiles = tmp_path / "config" / "profiles.toml"
    profiles.parent.mkdir()
    profiles.write_text(USER_PROFILES)
    monkeypatch.setenv("EMOAPP_PROFILES", str(profiles))
    monkeypatch.setenv("EMOAPP_MODELS_DIR", str(tmp_path / "models"))
    return profiles


@pytest.fixture
def hub(
    user: Path, monkeypatch: pytest.MonkeyPatch, tiny_models: dict[str, Path]
) -> Iterator[FakeHub]:
    """A hub that has the face and text models at their pins, but the voice model only
    at a newer commit (its pinned one is gone)."""
    from huggingface_hub import constants
    from tqdm import tqdm

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tqdm, "monitor_interval", 0)
    with FakeHub() as fake:
        fake.add(FACE_ID, registry()[FACE_ID].revision, tiny_models["face"])
        fake.add(TEXT_ID, registry()[TEXT_ID].revision, tiny_models["text"])
        fake.add(VOICE_ID, NEWER, tiny_models["voice"])
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        yield fake


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["models", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_pin_the_hub_lacks_is_one_line_offering_latest_which_then_holds_offline(
    hub: FakeHub, user: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin = registry()[VOICE_ID].revision
    assert pin is not None

    code, _, err = run(capsys, "pull", VOICE_ID, "--no-progress")
    assert code == 2
    assert err.count("\n") == 1
    assert f"the hub does not have {VOICE_ID} at the registry's pinned commit {pin[:12]}" in err
    assert f"`emoapp models pull {VOICE_ID} --revision latest`" in err

    code, out, err = run(capsys, "pull", VOICE_ID, "--revision", "latest", "--no-progress")
    assert code == 0, err
    assert f"{VOICE_ID}@{NEWER[:12]}: pulled" in out
    assert f"recorded in {user}: {VOICE_ID} loads at {NEWER[:12]}" in out

    # The manifest records the commit actually fetched, what was asked, and the pin.
    manifest = modelstore.read_manifest(VOICE_ID, NEWER, tmp_path / "models")
    assert manifest is not None
    assert (manifest.revision, manifest.requested, manifest.registry_revision) == (
        NEWER,
        "latest",
        pin,
    )
    # The user's profile file keeps what they wrote and gains the commit.
    saved = tomllib.loads(user.read_text())
    assert saved["profiles"]["mine"]["voice"] == VOICE_ID
    assert saved["revisions"] == {VOICE_ID: NEWER}
    assert user.read_text().startswith(USER_PROFILES)

    # From now on the registry id means that commit, and loads without the network.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    requests = len(hub.requests)
    spec = resolve_model(Modality.VOICE, VOICE_ID)
    assert spec is not None and spec.revision == NEWER and spec.revision_origin == "user"
    options = RuntimeOptions(device="cpu", models_dir=str(tmp_path / "models"))
    assert is_available_locally(spec, options)
    encoder = build_encoder(spec, options)
    encoder.load()
    t = np.arange(16000) / 16000
    chunk = AudioChunk(0.0, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, "t")
    [out_] = encoder.encode([chunk])
    assert out_.model_id == VOICE_ID
    assert isinstance(out_, ModalityPrediction) or out_.reason
    assert len(hub.requests) == requests

    # `models info` says where the revision came from.
    code, out, _ = run(capsys, "info", VOICE_ID)
    assert code == 0
    assert f"{NEWER} (recorded by `emoapp models pull --revision`; the registry pins {pin})" in out
    assert "confirmed: " in out and "unconfirmed" not in out


def test_pulling_a_profile_afterwards_uses_the_recorded_commit(hub: FakeHub, capsys) -> None:
    assert run(capsys, "pull", VOICE_ID, "--revision", "latest", "--no-progress")[0] == 0
    code, out, err = run(capsys, "pull", "default", "--no-progress")
    assert code == 0, err
    assert f"{VOICE_ID}@{NEWER[:12]}: already pulled" in out
    assert out.count(": pulled") == 2  # face and text, at their pins
    code, out, err = run(capsys, "pull", "mine", "--no-progress")
    assert code == 0 and f"{VOICE_ID}@{NEWER[:12]}: already pulled" in out, err


def test_revision_sha_and_going_back_to_the_pin(
    hub: FakeHub, user: Path, tiny_models: dict[str, Path], capsys
) -> None:
    code, out, err = run(capsys, "pull", VOICE_ID, "--revision", NEWER, "--no-progress")
    assert code == 0, err
    assert user_revisions() == {VOICE_ID: NEWER}
    # The hub gets the pinned commit back: asking for it forgets the recorded one.
    pin = registry()[VOICE_ID].revision
    assert pin is not None
    hub.add(VOICE_ID, pin, tiny_models["voice"], branch=None)
    code, out, err = run(capsys, "pull", VOICE_ID, "--revision", pin, "--no-progress")
    assert code == 0, err
    assert "at the registry's pin" in out
    assert user_revisions() == {}
    assert "[revisions]" not in user.read_text()
    assert tomllib.loads(user.read_text())["profiles"]["mine"]["voice"] == VOICE_ID
    spec = resolve_model(Modality.VOICE, VOICE_ID)
    assert spec is not None and spec.revision == pin and spec.revision_origin == "registry"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["default", "--revision", "latest"], "--revision applies to one hub model"),
        ([VOICE_ID, "--revision", "tip"], "give latest"),
        ([f"{VOICE_ID}@{NEWER}", "--revision", "latest"], "either after @ or with --revision"),
    ],
)
def test_revision_misuse_is_one_line(hub: FakeHub, capsys, argv: list[str], says: str) -> None:
    code, _, err = run(capsys, "pull", *argv, "--no-progress")
    assert code == 2 and says in err and err.count("\n") == 1


def test_a_pin_that_is_there_is_fetched_as_before(hub: FakeHub, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "pull", TEXT_ID, "--no-progress")
    assert code == 0, err
    pin = registry()[TEXT_ID].revision or ""
    manifest = modelstore.read_manifest(TEXT_ID, pin, tmp_path / "models")
    assert manifest is not None and manifest.requested == "pin"
    assert user_revisions() == {}


def test_recording_refuses_to_change_the_rest_of_a_profile_file(user: Path) -> None:
    odd = '[profiles.x]\nface = "off"\n[revisions.nested]\nkey = "value"\n'
    user.write_text(odd)
    with pytest.raises(RegistryError, match=r"\[revisions\] must map model ids to commits"):
        record_user_revision(VOICE_ID, NEWER)
    assert user.read_text() == odd
    assert json.dumps(tomllib.loads(odd))  # untouched and still valid


# --- the default and cpu profiles: pins with evidence, reasons, known file hashes ---------

EHCALABRES = "ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition"


def test_no_hub_model_of_the_default_or_cpu_profile_is_unconfirmed_and_each_says_why() -> None:
    from emoapp.registry import builtin_profiles

    entries = registry()
    for name in ("default", "cpu"):
        for modality, ref in builtin_profiles()[name].models.items():
            entry = entries[ref] if ref else None
            if entry is None or entry.bundled:
                continue
            assert entry.pin_confirmed, (name, modality, entry.id)
            assert "unconfirmed" not in entry.revision_source, entry.id
            assert entry.why, entry.id
    # The evidence the pins rest on (issue 25): the commits public sources name.
    assert entries[EHCALABRES].revision == "b520c9c46a719e36e1b9a91cad2cb5d0668757d8"
    assert entries["superb/hubert-base-superb-er"].revision == (
        "bac0e14e92f7f9fd56671c5060e572e883cad667"
    )
    assert entries["superb/hubert-large-superb-er"].revision == (
        "ef1a2ebfd7cfc424dc7f0fbcdc406e8b794d63bb"
    )
    assert entries[EHCALABRES].file_sha256 == {
        "model.safetensors": "33bd858e5a4dc3241a60e99dd46818bead624f889244ce5d6b6618426915fea0"
    }


@pytest.fixture
def ehcalabres_hub(
    user: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[FakeHub, Path]]:
    """A hub serving a tiny replica of the ehcalabres layout at the registry's pin."""
    from huggingface_hub import constants
    from tqdm import tqdm

    from emoapp.bench.tinymodels import make_pooled_head_voice_model

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tqdm, "monitor_interval", 0)
    replica = make_pooled_head_voice_model(tmp_path / "replica")
    with FakeHub() as fake:
        fake.add(EHCALABRES, registry()[EHCALABRES].revision, replica)
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        yield fake, replica


def test_a_download_whose_hash_is_not_the_recorded_one_is_refused(
    ehcalabres_hub: tuple[FakeHub, Path], tmp_path: Path, capsys
) -> None:
    code, _, err = run(capsys, "pull", EHCALABRES, "--no-progress")
    assert code == 2 and err.count("\n") == 1, err
    assert "model.safetensors of " in err and "not the 33bd858e5a4dc324..." in err
    pin = registry()[EHCALABRES].revision or ""
    assert modelstore.read_manifest(EHCALABRES, pin, tmp_path / "models") is None
    spec = resolve_model(Modality.VOICE, EHCALABRES)
    assert spec is not None
    options = RuntimeOptions(device="cpu", models_dir=str(tmp_path / "models"))
    assert not is_available_locally(spec, options)


def test_a_download_with_the_recorded_hash_says_so_and_loads_through_the_adapter(
    ehcalabres_hub: tuple[FakeHub, Path],
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses
    import hashlib

    _, replica = ehcalabres_hub
    digest = hashlib.sha256((replica / "model.safetensors").read_bytes()).hexdigest()
    entries = dict(registry())
    entries[EHCALABRES] = dataclasses.replace(
        entries[EHCALABRES], file_sha256={"model.safetensors": digest}
    )
    monkeypatch.setattr("emoapp.registry.registry", lambda: entries)
    monkeypatch.setattr("emoapp.modelstore.registry", lambda: entries, raising=False)
    code, out, err = run(capsys, "pull", EHCALABRES, "--no-progress")
    assert code == 0, err
    assert "model.safetensors: sha256 matches the one public evidence records" in out
    code, out, err = run(capsys, "pull", EHCALABRES, "--no-progress")
    assert "already pulled" in out and "sha256 matches" in out
    # The pulled checkpoint (a custom head) loads whole through the adapter, offline.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    spec = resolve_model(Modality.VOICE, EHCALABRES)
    assert spec is not None
    encoder = build_encoder(spec, RuntimeOptions(device="cpu", models_dir=str(tmp_path / "models")))
    encoder.load()
    assert encoder.head.startswith("pooled-tanh")


def test_the_guide_table_gives_each_hub_model_the_registrys_reasons() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "guide" / "models.md").read_text()
    table = guide.split("## The hub models and why they were chosen", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines()[1:]
            if line.startswith("| `")}  # fmt: skip
    hub = {i: e for i, e in registry().items() if not e.bundled}
    assert set(rows) == set(hub)
    for model_id, entry in hub.items():
        cells = [c.strip() for c in rows[model_id].strip().strip("|").split("|")]
        assert cells[-1] == entry.why, model_id
        assert cells[6].lower().startswith(entry.license.split()[0].lower()), model_id
