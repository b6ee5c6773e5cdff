"""``emoapp bench`` end to end in its smoke mode (tiny models), and the pieces it stands
on: device/dtype planning (CUDA included, by pretending), timing helpers, the scaling
frames. Behaviour only: no timing thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emoapp.bench.common import (
    BenchConfig,
    BenchError,
    MeasureBudget,
    Timing,
    Variant,
    device_sync,
    measure,
    measure_pair,
    plan_variants,
    ratio,
)
from emoapp.bench.peers import FER_PYTHON_ENV
from emoapp.bench.report import HEADLINE_KEYS
from emoapp.cli import main

TOP_KEYS = (
    "schema",
    "created",
    "command",
    "mode",
    "machine",
    "models",
    "variants",
    "primary_variant",
    *HEADLINE_KEYS,
    "precision",
    "encoders",
    "scaling",
    "live",
    "explain",
    "startup",
    "peers",
    "batch",
    "targets",
    "elapsed_s",
)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, str]:
    """One smoke run of the whole command: (exit status, JSON, printed table)."""
    import contextlib
    import io
    import os

    import torch

    root = tmp_path_factory.mktemp("bench")
    out = root / "bench.json"
    saved = os.environ.pop(FER_PYTHON_ENV, None)
    threads = torch.get_num_threads()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            rc = main(
                [
                    "bench",
                    "--models",
                    "tiny",
                    "--quick",
                    "--duration",
                    "2",
                    "--device",
                    "cpu",
                    "--threads",
                    "1",
                    "--skip",
                    "batch",  # worker processes and Ray: tests/bench/test_bench_batch.py
                    "--models-dir",
                    str(root / "cache"),
                    "--json",
                    str(out),
                ]
            )
    finally:
        torch.set_num_threads(threads)  # --threads set it for the whole process
        if saved is not None:
            os.environ[FER_PYTHON_ENV] = saved
    return rc, json.loads(out.read_text()), printed.getvalue()


def test_smoke_run_writes_every_documented_key(smoke):
    rc, result, printed = smoke
    assert rc == 0
    for key in TOP_KEYS:
        assert key in result, key
    assert result["mode"] == "smoke"
    assert result["machine"]["torch_threads"] == 1
    assert result["primary_variant"] == "cpu-float32"
    for key in HEADLINE_KEYS:
        assert isinstance(result[key], float) and result[key] > 0, key
    assert "Encoder cost at batch 1" in printed
    assert "JSON:" in printed


def test_precision_part_measures_and_records_each_model(smoke):
    import os

    from emoapp.encoders.precision import RECORD_ENV, read_record

    _, result, printed = smoke
    part = result["precision"]
    assert part["rule"]["speedup_margin"] == 1.15
    assert part["record"] == os.environ[RECORD_ENV]
    for modality in ("face", "voice", "text"):
        m = part["modalities"][modality]
        assert set(m["measurements"]) == set(part["precisions"]) >= {"float32", "int8"}
        f32 = m["measurements"]["float32"]
        assert f32["max_prob_diff"] == 0 and f32["top_agreement"] == 1 and f32["speedup"] == 1
        for figures in m["measurements"].values():
            assert figures["median_ms"] > 0 and 0 <= figures["max_prob_diff"] < 0.1
        assert m["auto"] in m["candidates"]
        assert "random weights" in m["note"]
    assert "int8" not in part["modalities"]["face"]["candidates"]
    entries = read_record()
    assert entries is not None
    assert any("bench/tiny-text" in key for key in entries)
    assert "CPU precision" in printed


def test_part_runs_only_the_parts_named():
    from emoapp.bench.common import SECTIONS, parts_to_skip

    assert parts_to_skip(frozenset(), frozenset({"precision"})) == frozenset(SECTIONS) - {
        "precision"
    }
    assert parts_to_skip(frozenset({"live"}), frozenset()) == {"live"}
    with pytest.raises(BenchError, match="--part: unknown part nothing"):
        parts_to_skip(frozenset(), frozenset({"nothing"}))


def test_encoder_figures_per_variant(smoke):
    _, result, _ = smoke
    base = result["encoders"]["cpu-float32"]
    assert base["face"]["faces"] == 1 and base["face"]["predicted"] is True
    for modality in ("face", "voice", "text"):
        figures = base[modality]
        assert figures["encode"]["n"] >= 2
        assert figures["encode"]["median_ms"] <= figures["encode"]["p95_ms"]
        assert figures["stages"]["forward_ms"] > 0
    assert base["voice"]["stages"]["vad_ms"] > 0  # the voice-activity gate is timed apart
    assert base["voice"]["overhead"] == pytest.approx(
        base["voice"]["encode"]["median_ms"] / base["voice"]["forward"]["median_ms"], rel=0.01
    )
    for name, figures in result["encoders"].items():
        if name != "cpu-float32":  # lower precision is checked against float32
            assert figures["max_prob_diff_vs_cpu_float32"] >= 0
            assert set(figures["encode_vs_cpu_float32"]) == {"face", "voice", "text"}


def test_scaling_covers_faces_windows_and_text_past_the_maximum(smoke):
    _, result, _ = smoke
    scaling = result["scaling"]
    faces = scaling["face"]
    assert [r["faces"] for r in faces] == [1, 2]
    assert [r["faces_found"] for r in faces] == [1, 2]
    assert faces[0]["classification_vs_1"] == 1.0
    assert [r["window_s"] for r in scaling["voice"]] == [0.5, 2.0]
    text = scaling["text"]
    assert text[0]["chunks"] == 1
    assert text[-1]["chunks"] > 1  # twice the model's maximum: chunked


def test_live_run_reports_every_modality(smoke):
    _, result, _ = smoke
    live = result["live"]
    assert set(live["modalities"]) == {"face", "voice", "text"}
    face = live["modalities"]["face"]
    assert face["inputs"] > 0 and face["encoded"] > 0
    # Counted over the measured window: frames that came before it and were still in the
    # slot or in the encoder when it began (at most one each) are encoded inside it.
    assert face["encoded"] <= face["inputs"] + 2
    assert live["estimates"] > 0
    assert live["rss_start_mb"] > 0 and live["rss_end_mb"] > 0
    assert live["cpu_cores_used"] > 0
    assert live["threads_left_running"] == []
    assert "age_from_window_end_p95_ms" in live["modalities"]["voice"]


def test_explanation_cost_per_modality_and_live_age_growth(smoke):
    _, result, printed = smoke
    explain = result["explain"]
    for key in ("cost", "cost_embedded"):
        assert set(explain[key]) == {"face", "voice", "text"}, key
        for name, cost in explain[key].items():
            assert cost["explain"]["median_ms"] > 0 and cost["encode"]["median_ms"] > 0, name
    assert explain["cost_embedded"]["face"]["method"] == "grad-cam"
    assert explain["cost_embedded"]["text"]["method"] == "exact-linear"
    growth = explain["live"]["age_growth"]
    assert set(growth) == {"face", "voice", "text"}
    assert growth["voice"]["figure"] == "age_from_window_end_p50_ms"
    assert sum(m["count"] for m in explain["live"]["explanations"].values()) > 0
    assert "Explanations (one input" in printed


def test_speech_recognition_part(smoke):
    _, result, printed = smoke
    asr = result["asr"]
    embedded = asr["recognizers"][0]
    assert embedded["model"] == "embedded/asr-pocketsphinx"
    assert embedded["realtime_factor"] > 0 and embedded["speech_s"] > 0
    live = asr["live"]
    assert "face_age_p50_ratio" in live["age_ratios"]  # a 2 s run may have no voice age
    assert live["asr"][0]["model"] == "embedded/asr-pocketsphinx"
    assert live["target"] == 1.10 and isinstance(live["met"], bool)
    assert "Speech recognition" in printed


def test_startup_and_peers(smoke):
    _, result, _ = smoke
    help_part = result["startup"]["help"]
    assert help_part["torch_imported"] is False
    assert help_part["heavy_modules_imported"] == []
    first = result["startup"]["first_estimate"]
    assert 0 < first["session_to_first_estimate_s"] <= first["spawn_to_first_estimate_s"]
    assert result["targets"]["help_imports_no_torch"] is True
    fer = result["peers"]["fer"]
    assert fer["status"] == "not run"
    assert "TensorFlow" in fer["reason"]


def test_bad_options_are_one_line_errors(capsys):
    assert main(["bench", "--skip", "everything"]) == 2
    assert "--skip: unknown part everything" in capsys.readouterr().err
    assert main(["bench", "--duration", "0"]) == 2
    assert "--duration" in capsys.readouterr().err


def test_cuda_requested_without_cuda_is_an_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BenchError, match="CUDA is not available"):
        plan_variants("cuda", torch)


def test_variants_with_a_gpu(monkeypatch):
    """With CUDA present, auto adds CUDA float16 and makes it the primary variant."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    auto = plan_variants("auto", torch)
    assert auto[0] == Variant("cpu", "float32")
    assert auto[-1] == Variant("cuda", "float16", primary=True)
    assert [v for v in auto if v.primary] == [auto[-1]]
    assert plan_variants("cuda:0", torch) == [Variant("cuda:0", "float16", primary=True)]
    assert plan_variants("cuda:0", torch)[0].name == "cuda0-float16"
    with pytest.raises(BenchError, match="1 CUDA devices"):
        plan_variants("cuda:1", torch)
    assert all(v.device == "cpu" for v in plan_variants("cpu", torch))
    with pytest.raises(BenchError, match="--device"):
        plan_variants("tpu", torch)
    # Timers wait for the GPU on CUDA devices only.
    assert callable(device_sync(torch, torch.device("cuda")))
    assert device_sync(torch, torch.device("cpu")) is None


def test_measure_respects_the_budget():
    calls = []
    timing = measure(
        lambda: calls.append(1), MeasureBudget(warmup=2, min_reps=3, max_reps=4, budget_s=0)
    )
    assert timing.n == 3 and len(calls) == 5
    timing = measure(lambda: None, MeasureBudget(warmup=0, min_reps=1, max_reps=4, budget_s=60))
    assert timing.n == 4
    order = []
    a, b = measure_pair(
        lambda: order.append("a"),
        lambda: order.append("b"),
        MeasureBudget(warmup=0, min_reps=2, max_reps=2, budget_s=0),
    )
    assert order == ["a", "b", "a", "b"] and a.n == b.n == 2


def test_timing_figures():
    t = Timing([1.0, 2.0, 3.0, 4.0, 100.0])
    assert t.median_ms == 3.0
    assert 4.0 < t.p95_ms <= 100.0
    assert t.as_dict()["n"] == 5
    assert ratio(Timing([4.0]), Timing([2.0])) == 2.0
    assert ratio(Timing([4.0]), Timing([])) is None
    assert np.isnan(Timing().median_ms)


def test_config_defaults():
    assert BenchConfig().duration_s == 60.0
    assert BenchConfig(quick=True).duration_s == 10.0
    assert BenchConfig(size="tiny").mode == "smoke"
    with pytest.raises(BenchError, match="--models"):
        BenchConfig(size="huge")  # type: ignore[arg-type]


def test_scaling_frames_hold_that_many_detectable_faces():
    from emoapp.bench.encoders import face_canvas, face_tile
    from emoapp.encoders.face import FaceDetector

    detector = FaceDetector()
    tile = face_tile()
    for n in (1, 2, 8):
        canvas = face_canvas(n, tile)
        assert canvas.shape == (400, 800, 3)
        assert len(detector.detect(canvas)) == n


def test_large_models_have_the_default_profiles_architectures(tmp_path):
    """``--models large`` stands in for the default profile: HuBERT-large as
    superb/hubert-large-superb-er lays it out, RoBERTa-large as tae898/emoberta-large (the
    HuBERT config is checked without building 300M random weights)."""
    from emoapp.bench import tinymodels

    hubert = tinymodels.hubert_er_config(size="large")
    assert (hubert.hidden_size, hubert.num_hidden_layers, hubert.num_attention_heads) == (
        1024,
        24,
        16,
    )
    assert hubert.intermediate_size == 4096 and hubert.conv_bias
    assert hubert.do_stable_layer_norm and hubert.feat_extract_norm == "layer"
    assert hubert.use_weighted_layer_sum
    assert set(hubert.label2id) == set(tinymodels.IEMOCAP_LABELS)
    base = tinymodels.hubert_er_config(variant="base", size="full")
    assert (base.hidden_size, base.num_hidden_layers, base.feat_extract_norm) == (768, 12, "group")
    with pytest.raises(ValueError, match="HuBERT"):
        tinymodels.make_voice_model(tmp_path / "w2v", size="large")


def test_benchmark_models_built_for_an_older_layout_are_rebuilt(monkeypatch, tmp_path):
    from emoapp.bench import common, tinymodels

    calls: list[str] = []

    def fake_make_all(root, size="tiny"):
        calls.append(size)
        for m in ("face", "voice", "text"):
            (root / f"{size}-{m}").mkdir(parents=True)
            (root / f"{size}-{m}" / "config.json").write_text("{}")

    monkeypatch.setattr(tinymodels, "make_all", fake_make_all)
    target = tmp_path / "models-large"
    for m in ("face", "voice", "text"):  # a cache from before the layout was recorded
        (target / f"large-{m}").mkdir(parents=True)
        (target / f"large-{m}" / "config.json").write_text("{}")
    (target / "bench-models.json").write_text(json.dumps({"size": "large"}))
    paths = common.ensure_models(tmp_path, "large")
    assert calls == ["large"] and paths["voice"] == target / "large-voice"
    common.ensure_models(tmp_path, "large")  # now current: reused, not built again
    assert calls == ["large"]
