"""``emoapp batch`` end to end with tiny models, on the local engine and on a local Ray.

One folder of mixed media (a video without audio, a speech recording with a transcript, a
truncated wav, a text file renamed .mp4) is analysed once per engine (module fixtures);
the tests check the index, the timelines against ``emoapp analyze``, resuming, worker
deaths and the audit log. Ray is started once, with this machine's CPUs capped at 2.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

import pytest

from emoapp.batch.engines import RayItemWorker, run_batch, worker_main
from emoapp.batch.jobs import (
    INDEX_COLUMNS,
    BatchItem,
    BatchJob,
    ModelRef,
    already_done,
    read_index,
    read_journal,
    read_manifest,
    walk_folder,
)
from emoapp.cli import main
from emoapp.core.errors import EmoappError
from emoapp.core.fusion import FusionConfig
from emoapp.core.messages import Modality
from emoapp.encoders.voice import VoiceConfig
from emoapp.privacy.audit import AuditLog
from emoapp.recorded.analyze import AnalysisConfig

ANALYSIS = ["--vad", "energy", "--face-fps", "2"]


def _models(tiny_models: dict[str, Path]) -> list[str]:
    return [
        "--face-model",
        str(tiny_models["face"]),
        "--voice-model",
        str(tiny_models["voice"]),
        "--text-model",
        str(tiny_models["text"]),
    ]


def _make_inputs(root: Path, samples: Path) -> tuple[Path, Path]:
    """A folder of mixed media (some broken) and a transcripts folder."""
    media = root / "media"
    (media / "calls").mkdir(parents=True)
    shutil.copy(samples / "face_only.mp4", media / "face_only.mp4")
    shutil.copy(samples / "speech.wav", media / "calls" / "speech.wav")
    data = (samples / "speech.wav").read_bytes()
    (media / "calls" / "cut.wav").write_bytes(data[: len(data) // 3])  # header says longer
    (media / "notes.mp4").write_text("this is not a video\n")
    (media / "readme.txt").write_text("not media: not an item\n")
    transcripts = root / "transcripts"
    transcripts.mkdir()
    shutil.copy(samples / "speech.srt", transcripts / "speech.srt")
    return media, transcripts


def _by_id(out: Path) -> dict[str, dict]:
    return {row["id"]: row for row in read_index(out)}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import SAMPLES

    return _make_inputs(tmp_path_factory.mktemp("batch-in"), SAMPLES)


@pytest.fixture(scope="module")
def local_run(inputs, tiny_models, tmp_path_factory) -> tuple[Path, int]:
    media, transcripts = inputs
    out = tmp_path_factory.mktemp("batch-local") / "out"
    code = main(
        ["batch", str(media), "--out", str(out), "--transcripts", str(transcripts),
         "--workers", "2", "-q", *ANALYSIS, *_models(tiny_models)]
    )  # fmt: skip
    return out, code


# --- items ---------------------------------------------------------------------------------


def test_folder_walk_ids_transcripts_and_exclusions(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "out").mkdir()
    for name in ("a/x.mp4", "a/x.WAV", "b.mp3", ".hidden/c.wav", "out/d.wav", "e.txt", ".f.wav"):
        (tmp_path / name).write_bytes(b"")
    transcripts = tmp_path / "tr"
    transcripts.mkdir()
    (transcripts / "b.vtt").write_text("WEBVTT\n")
    items = walk_folder(tmp_path, transcripts, exclude=[tmp_path / "out"])
    assert [i.id for i in items] == ["a/x.WAV", "a/x.mp4", "b"]
    assert items[2].transcript == transcripts / "b.vtt"
    assert items[0].transcript is None


def test_manifest_paths_ids_and_errors(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "path,transcript,id\nclips/one.mp4,one.srt,\n/abs/two.wav,,call-2\n\n"
    )
    items = read_manifest(tmp_path / "m.csv")
    assert items == [
        BatchItem("one", tmp_path / "clips" / "one.mp4", tmp_path / "one.srt"),
        BatchItem("call-2", Path("/abs/two.wav"), None),
    ]
    (tmp_path / "dup.csv").write_text("path\na/x.wav\nb/x.wav\n")
    with pytest.raises(EmoappError, match="also on line 2"):
        read_manifest(tmp_path / "dup.csv")
    (tmp_path / "nopath.csv").write_text("file\nx.wav\n")
    with pytest.raises(EmoappError, match="needs a 'path' column"):
        read_manifest(tmp_path / "nopath.csv")
    (tmp_path / "escape.csv").write_text("path,id\nx.wav,../up\n")
    with pytest.raises(EmoappError, match="not a usable name"):
        read_manifest(tmp_path / "escape.csv")


def _job(out: Path, **analysis: float) -> BatchJob:
    return BatchJob(
        load=dict,
        out_dir=out,
        analysis=AnalysisConfig(**analysis),
        fusion=FusionConfig(),
        models={Modality.FACE: ModelRef("m", "abc")},
    )


def test_the_key_changes_with_any_option_that_shapes_the_output(tmp_path: Path) -> None:
    base = _job(tmp_path)
    assert base.fingerprint == _job(tmp_path).fingerprint
    assert base.fingerprint != _job(tmp_path, step_s=1.0).fingerprint
    other_fusion = _job(tmp_path)
    other_fusion.fusion = FusionConfig(smoothing_s=2.0)
    assert base.fingerprint != other_fusion.fingerprint
    other_model = _job(tmp_path)
    other_model.models = {Modality.FACE: ModelRef("m", "def")}
    assert base.fingerprint != other_model.fingerprint


# --- the local engine ----------------------------------------------------------------------


@pytest.mark.slow
def test_index_names_every_outcome(local_run, inputs) -> None:
    out, code = local_run
    assert code == 1  # one input failed
    rows = _by_id(out)
    assert set(rows) == {"face_only", "calls/speech", "calls/cut", "notes"}
    assert [name for name, _ in INDEX_COLUMNS] == list(next(iter(rows.values())))
    assert rows["face_only"]["status"] == "done"
    assert rows["face_only"]["face_model"] is not None
    assert rows["face_only"]["voice_model"] is None  # no audio track: no voice model ran
    speech = rows["calls/speech"]
    assert speech["status"] == "done"
    assert speech["transcript"].endswith("speech.srt")
    assert speech["text_model"] is not None and speech["voice_model"] is not None
    assert speech["rows"] == len((out / "timelines/calls/speech.jsonl").read_text().splitlines())
    assert speech["duration_s"] == pytest.approx(7.32, abs=0.05)
    cut = rows["calls/cut"]
    assert cut["status"] == "truncated" and "truncated" in cut["error"]
    assert 0 < cut["analysed_s"] < speech["analysed_s"] and cut["rows"] > 0
    notes = rows["notes"]
    assert notes["status"] == "failed" and "\n" not in notes["error"]
    assert "notes.mp4" in notes["error"] and notes["timeline"] is None
    assert not (out / "timelines" / "notes.jsonl").exists()
    assert sorted(p.name for p in (out / "timelines").rglob("*")) == [
        "calls", "cut.jsonl", "face_only.jsonl", "speech.jsonl"
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("item", "source", "transcript"),
    [("face_only", "face_only.mp4", False), ("calls/speech", "calls/speech.wav", True)],
)
def test_batch_timelines_are_the_analyze_timelines(
    local_run, inputs, tiny_models, tmp_path, item, source, transcript
) -> None:
    out, _ = local_run
    media, transcripts = inputs
    single = tmp_path / "single.jsonl"
    extra = ["--transcript", str(transcripts / "speech.srt")] if transcript else []
    code = main(
        ["analyze", str(media / source), "--out", str(single), "-q", *extra, *ANALYSIS,
         *_models(tiny_models)]
    )  # fmt: skip
    assert code == 0
    # analyze's file is its header record (for --resume), then the very same rows.
    header, rows = single.read_bytes().split(b"\n", 1)
    assert b'"header"' in header and b'"t"' not in header
    assert (out / "timelines" / f"{item}.jsonl").read_bytes() == rows


@pytest.mark.slow
def test_calls_by_speaker_give_the_analyze_timeline(tiny_models, samples, tmp_path) -> None:
    calls, transcripts = tmp_path / "calls", tmp_path / "transcripts"
    calls.mkdir()
    transcripts.mkdir()
    shutil.copy(samples / "call.flac", calls / "call.flac")
    shutil.copy(samples / "call.vtt", transcripts / "call.vtt")
    options = ["--speakers", "channels", "--speaker-names", "Agent,Customer", "--by",
               "utterance", "--step", "1", "--hop", "1", "-q", *ANALYSIS,
               *_models(tiny_models)]  # fmt: skip
    out = tmp_path / "out"
    code = main(["batch", str(calls), "--out", str(out), "--transcripts", str(transcripts),
                 "--workers", "1", *options])  # fmt: skip
    assert code == 0
    single = tmp_path / "single.jsonl"
    code = main(["analyze", str(calls / "call.flac"), "--transcript",
                 str(transcripts / "call.vtt"), "--out", str(single), *options])  # fmt: skip
    assert code == 0
    timeline = (out / "timelines" / "call.jsonl").read_bytes()
    assert timeline == single.read_bytes()
    rows = [json.loads(line) for line in timeline.splitlines()]
    assert {row["speaker"] for row in rows} == {"Agent", "Customer"}
    (row,) = read_index(out)
    assert row["status"] == "done" and row["rows"] == len(rows)
    assert row["voice_model"] is not None and row["face_model"] is None


@pytest.mark.slow
def test_a_resumed_run_redoes_only_what_is_not_finished(local_run, inputs, tiny_models) -> None:
    out, _ = local_run
    media, transcripts = inputs
    before = {p: p.stat().st_mtime_ns for p in (out / "timelines").rglob("*.jsonl")}
    (out / "timelines" / "calls" / "speech.jsonl").unlink()  # lost: must be redone
    code = main(
        ["batch", str(media), "--out", str(out), "--transcripts", str(transcripts),
         "--workers", "1", "-q", *ANALYSIS, *_models(tiny_models)]
    )  # fmt: skip
    assert code == 1
    rows = _by_id(out)
    assert rows["face_only"]["this_run"] is False and rows["calls/cut"]["this_run"] is False
    assert rows["calls/speech"]["this_run"] is True and rows["calls/speech"]["status"] == "done"
    assert rows["notes"]["this_run"] is True and rows["notes"]["status"] == "failed"
    for path in (out / "timelines" / "face_only.jsonl", out / "timelines/calls/cut.jsonl"):
        assert path.stat().st_mtime_ns == before[path]
    # The audit log has one line per batch: where, how many inputs, how many timelines.
    batches = [e for e in AuditLog().entries() if e.event == "batch"]
    assert batches[-1].details == {"path": str(out.resolve()), "items": 4, "timelines": 3}


def test_a_changed_file_or_option_is_not_taken_as_done(local_run, inputs) -> None:
    out, _ = local_run
    media, _ = inputs
    journal = read_journal(out)
    record = journal["face_only"]
    job = BatchJob(load=dict, out_dir=out, analysis=AnalysisConfig(), fusion=FusionConfig(),
                   models={})  # fmt: skip
    item = BatchItem("face_only", media / "face_only.mp4")
    assert not already_done(item, job, record)  # other options: another key
    assert not already_done(BatchItem("face_only", media / "notes.mp4"), job, record)


def _crash_once_main(conn, job, marker_dir: str) -> None:
    """A worker that dies (as a segfault would) on items named crash*: on the first
    attempt only for crash-once, on every attempt for crash-always."""
    import emoapp.batch.jobs as batch

    run = batch.ItemWorker.run

    def run_or_die(self, item, attempt=1):
        marker = Path(marker_dir) / f"{item.id}.{attempt}"
        marker.touch()
        if item.id == "crash-always" or (item.id == "crash-once" and attempt == 1):
            os._exit(9)
        return run(self, item, attempt)

    batch.ItemWorker.run = run_or_die  # type: ignore[method-assign]
    worker_main(conn, job)


def _baseline_job(out: Path) -> BatchJob:
    """A job on the baseline models (no torch model to load), coarse steps."""
    from emoapp.config import ModelOptions, load_batch_encoders

    options = ModelOptions(profile="baseline", device="cpu")
    return BatchJob(
        load=functools.partial(
            load_batch_encoders, options, {Modality.VOICE: VoiceConfig(vad="energy")}
        ),
        out_dir=out,
        analysis=AnalysisConfig(step_s=2.0, window_s=2.0, hop_s=2.0),
        fusion=FusionConfig(),
        models={},
    )


@pytest.mark.slow
def test_a_dying_worker_is_replaced_and_its_item_tried_once_more(samples, tmp_path) -> None:
    wav = samples / "speech.wav"
    items = [BatchItem(name, wav) for name in ("crash-once", "crash-always")]
    job = _baseline_job(tmp_path / "out")
    report = run_batch(
        items, job, workers=1,
        local_target=functools.partial(_crash_once_main, marker_dir=str(tmp_path)),
    )  # fmt: skip
    rows = _by_id(job.out_dir)
    assert rows["crash-once"]["status"] == "done" and rows["crash-once"]["attempts"] == 2
    assert rows["crash-always"]["status"] == "failed"
    assert "died" in rows["crash-always"]["error"] and rows["crash-always"]["attempts"] == 2
    assert report.engine.replaced == 3
    assert sorted(p.name for p in tmp_path.glob("crash-*")) == [
        "crash-always.1", "crash-always.2", "crash-once.1", "crash-once.2"
    ]  # fmt: skip


def _interrupt_main(conn, job) -> None:
    """A worker that, on the item named "stop", does what Ctrl-C in a terminal does to the
    batch's parent (the workers ignore SIGINT), then keeps working on it."""
    import signal
    import time

    import emoapp.batch.jobs as batch

    run = batch.ItemWorker.run

    def run_or_interrupt(self, item, attempt=1):
        if item.id == "stop":
            os.kill(os.getppid(), signal.SIGINT)
            time.sleep(60)
        return run(self, item, attempt)

    batch.ItemWorker.run = run_or_interrupt  # type: ignore[method-assign]
    worker_main(conn, job)


@pytest.mark.slow
def test_ctrl_c_keeps_finished_items_and_the_next_run_does_the_rest(samples, tmp_path) -> None:
    job = _baseline_job(tmp_path / "out")
    items = [BatchItem("first", samples / "speech.wav"), BatchItem("stop", samples / "speech.wav")]
    with pytest.raises(KeyboardInterrupt):
        run_batch(items, job, workers=1, local_target=_interrupt_main)
    rows = _by_id(job.out_dir)
    assert rows["first"]["status"] == "done" and rows["stop"]["status"] == "pending"
    assert (job.out_dir / "timelines" / "first.jsonl").is_file()
    assert not (job.out_dir / "timelines" / "stop.jsonl").exists()
    report = run_batch(items, job, workers=1)
    assert report.skipped == 1 and report.count("done") == 2
    assert not list(job.out_dir.rglob("*.part"))


def test_usage_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder or manifest" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no media files found" in capsys.readouterr().err
    code = main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                 "--gpus-per-worker", "0.5"])  # fmt: skip
    assert code == 2 and "need --engine ray" in capsys.readouterr().err


def test_without_pyarrow_the_index_is_csv(tmp_path, monkeypatch) -> None:
    import builtins

    from emoapp.batch.jobs import index_rows, write_index

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    items = [BatchItem("a", tmp_path / "a.wav")]
    path = write_index(tmp_path, index_rows(items, {}))
    assert path.name == "index.csv"
    monkeypatch.undo()
    assert read_index(tmp_path) == [
        {**dict.fromkeys(n for n, _ in INDEX_COLUMNS), "id": "a", "path": str(tmp_path / "a.wav"),
         "status": "pending", "this_run": "False", "attempts": "0"}
    ]  # fmt: skip


# --- the ray engine ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=80 * 1024 * 1024,
    )
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_local_timelines_and_resumes(
    local_ray, local_run, inputs, tiny_models, tmp_path
) -> None:
    local_out, _ = local_run
    media, transcripts = inputs
    out = tmp_path / "ray-out"
    argv = ["batch", str(media), "--out", str(out), "--transcripts", str(transcripts),
            "--engine", "ray", "--workers", "2", "-q", *ANALYSIS,
            *_models(tiny_models)]  # fmt: skip
    assert main(argv) == 1
    rows = _by_id(out)
    assert {i: r["status"] for i, r in rows.items()} == {
        "face_only": "done", "calls/speech": "done", "calls/cut": "truncated", "notes": "failed"
    }  # fmt: skip
    assert rows["notes"]["error"] == _by_id(local_out)["notes"]["error"]
    for name in ("face_only.jsonl", "calls/speech.jsonl", "calls/cut.jsonl"):
        assert (out / "timelines" / name).read_bytes() == (
            local_out / "timelines" / name
        ).read_bytes()
    # Resumed: the finished items are skipped, only the failed one is tried again.
    (out / "journal.jsonl").write_text((out / "journal.jsonl").read_text() + '{"broken": ')
    assert main(argv) == 1
    again = _by_id(out)
    assert {i for i, r in again.items() if r["this_run"]} == {"notes"}
    text = (out / "journal.jsonl").read_text()
    journal = [json.loads(x) for x in text.splitlines() if not x.startswith('{"broken"')]
    finished = [r for r in journal if r.get("status") != "started"][:4]  # the first run's
    assert {r["id"] for r in finished} == set(rows)
    assert journal[0]["status"] == "started"  # the journal first, on Ray too


def test_ray_refuses_workers_it_cannot_place(local_ray, tmp_path) -> None:
    from emoapp.batch.engines import run_ray

    items = [BatchItem("a", tmp_path / "a.wav")]
    with pytest.raises(EmoappError, match="the Ray cluster has no GPU"):
        run_ray(items, _job(tmp_path), None, lambda record: None, gpus_per_worker=0.5)
    with pytest.raises(EmoappError, match="no room for one worker"):
        run_ray(items, _job(tmp_path), None, lambda record: None, cpus_per_worker=3)


class _DyingRayWorker(RayItemWorker):
    """Dies (as a native crash would) on crash-once's first attempt and on every attempt
    at crash-always."""

    def run(self, item, attempt):
        if item.id == "crash-always" or (item.id == "crash-once" and attempt == 1):
            os._exit(9)
        return super().run(item, attempt)


@pytest.mark.slow
def test_a_dying_ray_actor_is_replaced_and_its_item_tried_once_more(
    local_ray, samples, tmp_path
) -> None:
    import sys

    from emoapp.batch.engines import run_ray

    # Ray ships the test's actor class by value: the workers need not import this file.
    module = sys.modules[__name__]
    local_ray.cloudpickle.register_pickle_by_value(module)
    job = _baseline_job(tmp_path / "out")
    (job.out_dir / "timelines").mkdir(parents=True)
    items = [BatchItem(name, samples / "speech.wav") for name in ("crash-once", "crash-always")]
    records: dict[str, dict] = {}
    try:
        stats = run_ray(
            items, job, 1, lambda r: records.setdefault(r["id"], r), worker_class=_DyingRayWorker
        )
    finally:
        local_ray.cloudpickle.unregister_pickle_by_value(module)
    assert records["crash-once"]["status"] == "done" and records["crash-once"]["attempts"] == 2
    assert records["crash-always"]["status"] == "failed"
    assert "died" in records["crash-always"]["error"]
    assert stats.replaced == 3
