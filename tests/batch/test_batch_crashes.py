"""Batch runs that cannot mislabel: a worker dying between items is replaced and the item
handed to the next one; a run stopped between a timeline's rename and its journal record
never leaves an earlier run's record vouching for it; host info works without os.uname.

The engine's protocol is what is tested, so its workers here are light stand-ins for
:func:`worker_main` (no model to import in each fresh process): each one writes a
timeline that names the settings it was made with, renamed into place as
:class:`~emoapp.batch.jobs.ItemWorker` does, and returns the same kind of record.
The host test runs the real :class:`ItemWorker` on the baseline voice model.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from pathlib import Path

import pytest

import emoapp.batch.jobs as batch
from emoapp.batch.engines import run_batch, run_local
from emoapp.batch.jobs import (
    DONE,
    FINISHED,
    JOURNAL,
    PART_SUFFIX,
    BatchItem,
    BatchJob,
    ItemWorker,
    base_record,
    file_state,
    item_key,
    read_journal,
    sha256_file,
)
from emoapp.core.fusion import FusionConfig
from emoapp.core.messages import Modality
from emoapp.encoders.voice import VoiceConfig
from emoapp.recorded.analyze import AnalysisConfig
from tests.batch.test_batch import _by_id


def _job(out: Path, step_s: float = 2.0) -> BatchJob:
    return BatchJob(
        load=dict, out_dir=out, analysis=AnalysisConfig(step_s=step_s), fusion=FusionConfig(),
        models={},
    )  # fmt: skip


def load_voice_baseline() -> dict:
    from emoapp.config import ModelOptions, load_encoders

    options = ModelOptions(profile="baseline", device="cpu")
    configs = {Modality.VOICE: VoiceConfig(vad="energy")}
    return load_encoders(options, {Modality.VOICE}, configs, strict=True).encoders


def fake_run(job: BatchJob, item: BatchItem, attempt: int) -> dict:
    """What :meth:`ItemWorker.run` does to the output folder and the record, without a
    model: the timeline (one line naming the job's settings) is written to ``.part`` and
    renamed into place, and the record carries the item's key."""
    final = job.timeline_path(item.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + PART_SUFFIX)
    part.write_text(json.dumps({"t": 0.0, "made_with": job.fingerprint}) + "\n")
    os.replace(part, final)
    media_sha = sha256_file(item.path)
    record = base_record(item, job)
    record.update(
        status=DONE,
        attempts=attempt,
        media_state=file_state(item.path),
        media_sha256=media_sha,
        config_key=item_key(media_sha, None, job.fingerprint),
        timeline=str(final.relative_to(job.out_dir).as_posix()),
        rows=1,
    )
    return record


def fake_worker_main(conn, job: BatchJob) -> None:
    """:func:`worker_main`'s protocol with :func:`fake_run` for the work."""
    conn.send(("ready", os.getpid()))
    while (message := conn.recv()) is not None:
        conn.send(("result", fake_run(job, *message)))


def _die_between_items_main(conn, job, marker_dir: str) -> None:
    """A worker that, the first time, sends its first result and then dies before it can
    take another item (its end of the pipe closed first, so handing it the next item
    fails with BrokenPipeError rather than racing its exit)."""
    marker = Path(marker_dir) / "died-once"
    if marker.exists():
        fake_worker_main(conn, job)
        return
    conn.send(("ready", os.getpid()))
    item, attempt = conn.recv()
    conn.send(("result", fake_run(job, item, attempt)))
    conn.close()
    marker.touch()
    # Alive (so not yet reaped) until the parent has begun handing it the next item (the
    # test's on_start marks that), however long a loaded machine takes to get there.
    offered = Path(marker_dir) / "offered-next"
    deadline = time.monotonic() + 60
    while not offered.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os._exit(0)


def test_a_worker_dying_between_items_is_replaced_and_nothing_is_lost(samples, tmp_path) -> None:
    wav = samples / "speech.wav"
    items = [BatchItem(name, wav) for name in ("first", "second", "third")]
    job = _job(tmp_path / "out")
    records: list[dict] = []
    started: list[tuple[str, int]] = []

    def on_result(record: dict) -> None:
        records.append(record)
        deadline = time.monotonic() + 30
        while not (tmp_path / "died-once").exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # the worker has closed its end: the next send breaks

    def on_start(item: BatchItem, attempt: int) -> None:
        started.append((item.id, attempt))
        if item.id == "second":  # the parent is handing the dying worker its next item
            (tmp_path / "offered-next").touch()

    stats = run_local(
        items,
        job,
        1,
        on_result,
        functools.partial(_die_between_items_main, marker_dir=str(tmp_path)),
        on_start=on_start,
    )
    assert sorted(r["id"] for r in records) == ["first", "second", "third"]
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in records), records
    assert stats.replaced >= 1
    # "second" was offered to the dead worker (not an attempt), then to its replacement
    assert started == [("first", 1), ("second", 1), ("second", 1), ("third", 1)]


def test_host_info_needs_no_os_uname(samples, tmp_path, monkeypatch) -> None:
    """Windows has no os.uname: the worker's host comes from the platform module, and an
    item is analysed all the same."""
    monkeypatch.delattr(os, "uname", raising=False)
    job = _job(tmp_path / "out")
    job.load = load_voice_baseline
    record = ItemWorker(job).run(BatchItem("speech", samples / "speech.wav"))
    assert record["status"] == "done", record.get("error")
    assert record["worker"] == f"{platform.node() or 'unknown-host'}:{os.getpid()}"


class _Stop(BaseException):
    """The parent dying at one exact step (as kill -9 would; nothing after it runs in
    the journal's code)."""


@pytest.mark.parametrize("when", ["before the record", "half the record"])
def test_a_run_stopped_after_the_rename_never_mislabels_a_timeline(
    when: str, samples, tmp_path, monkeypatch
) -> None:
    """Run A finishes the item. Run B, with another step, renames its own timeline into
    place and is stopped before (or while) writing the item's record. Run A again must not
    take B's timeline for its own: it redoes the item, and the timeline is A's again."""
    item = BatchItem("speech", samples / "speech.wav")
    job_a, job_b = _job(tmp_path / "out"), _job(tmp_path / "out", step_s=1.0)
    assert job_a.fingerprint != job_b.fingerprint
    fake = fake_worker_main

    assert run_batch([item], job_a, workers=1, local_target=fake).count("done") == 1
    timeline = job_a.timeline_path("speech")
    a_bytes = timeline.read_bytes()

    append = batch.Journal.append

    def stop_at_the_result(self, record) -> None:
        if record.get("status") in FINISHED:
            if when == "half the record":
                line = json.dumps(record)
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(line[: len(line) // 2])
            raise _Stop
        append(self, record)

    monkeypatch.setattr(batch.Journal, "append", stop_at_the_result)
    with pytest.raises(_Stop):
        run_batch([item], job_b, workers=1, local_target=fake)
    monkeypatch.undo()
    assert timeline.read_bytes() != a_bytes  # B's timeline is in place, unrecorded
    assert read_journal(job_a.out_dir)["speech"]["status"] == "started"

    report = run_batch([item], job_a, workers=1, local_target=fake)
    assert report.skipped == 0 and _by_id(job_a.out_dir)["speech"]["this_run"] is True
    assert timeline.read_bytes() == a_bytes
    last = (job_a.out_dir / JOURNAL).read_text().splitlines()[-1]
    assert json.loads(last)["status"] == "done"
