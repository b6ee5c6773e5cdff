"""The batch part of ``emoapp bench``: one real run on the local engine with tiny models
(the Ray engine's batch runs are tested in tests/batch/test_batch.py)."""

from __future__ import annotations

from emoapp.bench.batch import run_batch_bench
from emoapp.bench.common import BenchConfig
from emoapp.bench.report import _render_batch


def test_batch_figures_on_the_local_engine(tiny_models, tmp_path) -> None:
    config = BenchConfig(size="tiny", models_dir=tmp_path, threads=1)
    result = run_batch_bench(config, tiny_models, engines=("local",), workers=(1,), items=2)
    run = result["runs"]["local"]["1"]
    assert run["workers"] == 1 and run["done"] == 2 and run["failed"] == 0
    assert run["media_s"] > 14  # two copies of the 7.3 s sample
    assert 0 < run["ready_s"] < run["wall_s"]
    assert run["items_per_min"] > 0 and run["media_hours_per_hour"] > 0
    assert run["steady_items_per_min"] >= run["items_per_min"]
    table = "\n".join(_render_batch(result))
    assert "local" in table and "2 done, 0 failed" in table
