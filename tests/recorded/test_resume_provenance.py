"""``analyze --resume`` cannot mix rows of different precisions, devices, weights or
emoapp versions in one file, and it checks before it touches anything: a file it refuses
(an unrelated ``notes.jsonl`` among them) is left byte for byte as it was.

The speech sample through a tiny voice model built on the spot (a local folder, so its
checksum is the SHA-256 of its files), text and speech recognition off.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import emoapp
from emoapp.cli import main
from emoapp.recorded.runheader import model_checksum, read_header
from emoapp.recorded.timeline import cut_partial_row, resume_point


@pytest.fixture
def voice_model(tiny_models: dict[str, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "voice-model"
    shutil.copytree(tiny_models["voice"], copy)
    return copy


def _argv(clip: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "analyze", str(clip), "--voice-model", str(model), "--text-model", "none",
        "--asr", "off", "--vad", "energy", "--hop", "1", "--device", "cpu", "-q",
        "--out", str(out), *extra,
    ]  # fmt: skip


def _cut(out: Path, keep_rows: int) -> None:
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[: 1 + keep_rows]) + '{"t": 9.5, "fu', encoding="utf-8")


def test_the_header_names_device_precision_checksums_and_version(
    samples: Path, voice_model: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("EMOAPP_PRECISION_FILE", str(tmp_path / "no-measurement.json"))
    clip = samples / "speech.wav"
    out = tmp_path / "t.jsonl"
    assert main(_argv(clip, voice_model, out, "--dtype", "auto")) == 0
    header = read_header(out)
    assert header is not None
    runtime, voice = header["header"]["runtime"], header["header"]["models"]["voice"]
    assert runtime == {"emoapp": emoapp.__version__, "device": "cpu", "dtype": "auto"}
    # what auto resolved to (float32 on a CPU without a precision measurement)
    assert (voice["device"], voice["dtype"]) == ("cpu", "float32")
    assert voice["checksum"] == model_checksum(str(voice_model), "transformers")
    assert voice["checksum"].startswith("sha256:")
    whole = out.read_bytes()

    # The same run resumes (a half-written last row is cut only then) ...
    _cut(out, 2)
    assert main(_argv(clip, voice_model, out, "--dtype", "auto", "--resume")) == 0
    assert out.read_bytes() == whole

    def refused(*extra: str) -> str:
        _cut(out, 2)
        before = out.read_bytes()
        capsys.readouterr()
        assert main(_argv(clip, voice_model, out, *extra, "--resume")) == 2
        assert out.read_bytes() == before  # refused before anything was touched
        return capsys.readouterr().err

    # ... another requested precision does not (the rows would mix precisions),
    err = refused("--dtype", "bfloat16")
    assert 'runtime.dtype: "auto" in the file, "bfloat16" now' in err
    assert 'models.voice.dtype: "float32" in the file, "bfloat16" now' in err
    # nor other weights under the same folder name,
    weights = next(p for p in voice_model.iterdir() if p.suffix in (".safetensors", ".bin"))
    pristine = weights.read_bytes()
    weights.write_bytes(pristine[:-8] + b"\0" * 8)
    assert "models.voice.checksum" in refused()
    weights.write_bytes(pristine)
    # nor another emoapp.
    version = emoapp.__version__
    monkeypatch.setattr(emoapp, "__version__", "99.0")
    assert f'runtime.emoapp: "{version}" in the file, "99.0" now' in refused()


@pytest.mark.parametrize(
    "content",
    [
        b'{"a": 1}\n{"b": 2',  # JSON lines, no "t", last line unfinished
        b"these are my notes\nand a last line without its newline",
        b'{"t": 1.0}\n{"t": 2.0, "half',  # looks like rows, has no header record
    ],
)
def test_a_file_resume_refuses_is_left_as_it_was(
    content: bytes, samples: Path, voice_model: Path, tmp_path: Path, capsys
) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_bytes(content)
    assert main(_argv(samples / "speech.wav", voice_model, notes, "--resume")) == 2
    assert notes.read_bytes() == content
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("emoapp: error:"), err


def test_resume_point_only_reads_and_cut_partial_row_cuts(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    content = b'{"header": {}}\n{"t": 0.5}\n{"t": 1.0, "fu'
    path.write_bytes(content)
    assert resume_point(path) == 0.5
    assert path.read_bytes() == content
    assert cut_partial_row(path) == len(b'{"t": 1.0, "fu')
    assert path.read_bytes() == b'{"header": {}}\n{"t": 0.5}\n'
    assert cut_partial_row(path) == 0 and cut_partial_row(tmp_path / "missing") == 0
    assert json.loads(path.read_text().splitlines()[-1]) == {"t": 0.5}
