"""``emoapp bench --part precision --real-models``: the real models present in the local
model store are measured under the ids and revisions ``--dtype auto`` looks up, and the
ones not present are listed, not measured. A tiny model saved with ``save_pretrained``
stands in for a pulled registry model in a fake Hugging Face cache."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from emoapp.cli import main
from emoapp.core.messages import Modality
from emoapp.encoders.factory import RuntimeOptions, build_encoder
from emoapp.encoders.precision import (
    MEASURE_COMMAND,
    RECORD_ENV,
    measure_command,
    no_record,
    read_record,
)
from emoapp.modelstore import snapshot_dir
from emoapp.registry import registry, resolve_model

TEXT_ID = "j-hartmann/emotion-english-distilroberta-base"
FACE_ID = "trpakov/vit-face-expression"
VOICE_ID = "superb/hubert-base-superb-er"


@pytest.fixture
def store(tmp_path: Path, tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder holding the cpu profile's text model (tiny weights, at the
    registry's pinned commit) and nothing else; a fresh precision record."""
    cache = tmp_path / "store"
    pin = registry()[TEXT_ID].revision
    assert pin is not None
    shutil.copytree(tiny_models["text"], snapshot_dir(TEXT_ID, pin, cache))
    monkeypatch.setenv("EMOAPP_MODELS_DIR", str(cache))
    monkeypatch.setenv(RECORD_ENV, str(tmp_path / "precision.json"))
    monkeypatch.setenv("EMOAPP_PROFILES", str(tmp_path / "no-profiles.toml"))
    return cache


def _load_text_auto():
    spec = resolve_model(Modality.TEXT, TEXT_ID)
    assert spec is not None
    encoder = build_encoder(spec, RuntimeOptions(device="cpu", dtype="auto"))
    encoder.load()
    return encoder


def test_precision_part_measures_the_pulled_models_and_auto_reads_their_record(
    store: Path, tmp_path: Path
) -> None:
    # Before: no record, and the reason names the command that makes one for this model.
    before = _load_text_auto()
    wanted = f"{MEASURE_COMMAND} --real-models {TEXT_ID}"
    assert before.precision.name == "float32"
    assert before.precision.reason == f"auto: {no_record(wanted)}"

    out = tmp_path / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(
            [
                "bench",
                "--part",
                "precision",
                "--models",
                "tiny",
                "--threads",
                "1",
                "--real-models",
                "cpu",
                "--models-dir",
                str(tmp_path / "bench-models"),
                "--json",
                str(out),
            ]
        )
    assert rc == 0
    real = json.loads(out.read_text())["precision"]["real_models"]
    assert real["asked"] == "cpu"
    assert list(real["measured"]) == [TEXT_ID]
    measured = real["measured"][TEXT_ID]
    assert measured["revision"] == registry()[TEXT_ID].revision
    assert "note" not in measured  # trained weights: no random-weights caveat
    # the sample media's sentences beside the fixed ones
    assert measured["inputs"] > 7
    assert real["not_measured"] == {
        FACE_ID: f"not present locally (emoapp models pull {FACE_ID})",
        VOICE_ID: f"not present locally (emoapp models pull {VOICE_ID})",
    }
    assert real["failed"] == {}
    table = printed.getvalue()
    assert f"{FACE_ID}: not present locally" in table and f"{TEXT_ID}: " in table

    entries = read_record()
    assert entries is not None and measured["key"] in entries

    # After: the same model loaded with --dtype auto finds that entry (the key matches).
    after = _load_text_auto()
    assert "no precision measurement" not in after.precision.reason
    assert after.precision.name == measured["auto"]
    assert after.precision.reason == measured["reason"]


def test_real_models_lists_what_is_absent_and_built_in(store: Path) -> None:
    from emoapp.bench.precision import real_models

    everything = real_models("all")
    assert [s.model for s in everything.present] == [TEXT_ID]
    hub = [e.id for e in registry().values() if not e.bundled]
    assert set(everything.skipped) == set(hub) - {TEXT_ID}
    assert all(
        why.startswith("not present locally (emoapp models pull ")
        for why in everything.skipped.values()
    )

    embedded = real_models("embedded")
    assert embedded.present == [] and len(embedded.skipped) == 3
    assert all(why.startswith("built in") for why in embedded.skipped.values())

    assert real_models("none").present == [] and real_models("none").skipped == {}
    # named twice (a profile and its id): measured once
    both = real_models(f"cpu,{TEXT_ID}")
    assert [s.model for s in both.present] == [TEXT_ID]
    # an unknown hub id is listed as absent, not an error
    assert "nobody/nothing" in real_models("nobody/nothing").skipped


def test_a_local_folder_is_named_by_its_path(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    from emoapp.bench.precision import real_models

    found = real_models(str(tiny_models["voice"]))
    assert len(found.present) == 1
    assert found.present[0].modality is Modality.VOICE
    assert found.present[0].model == str(tiny_models["voice"])
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert-nope"}))
    from emoapp.bench.common import BenchError

    with pytest.raises(BenchError, match="not say it is a face, voice or text classifier"):
        real_models(str(tmp_path))


def test_measure_command_names_what_measures_each_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOAPP_PROFILES", "/nonexistent/profiles.toml")
    monkeypatch.delenv("EMOAPP_MODELS_DIR", raising=False)
    pin = registry()[TEXT_ID].revision
    assert measure_command("bench/full-text") == MEASURE_COMMAND
    assert measure_command(TEXT_ID, pin) == f"{MEASURE_COMMAND} --real-models {TEXT_ID}"
    other = "0" * 40
    assert measure_command(TEXT_ID, other).endswith(f"--real-models {TEXT_ID}@{other}")
    assert measure_command("org/name", "v1", "/my models") == (
        f"{MEASURE_COMMAND} --real-models org/name@v1 --real-models-dir '/my models'"
    )
    monkeypatch.setenv("EMOAPP_MODELS_DIR", "/store")
    assert measure_command("org/name", None, "/store") == (
        f"{MEASURE_COMMAND} --real-models org/name"
    )
