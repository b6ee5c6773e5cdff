"""``emoapp bench``: measure what the pipeline costs on this machine, print a table and
write the figures as JSON (see docs/benchmarks.md for every key).

Imports nothing heavy at module level: the work lives in :mod:`emoapp.bench`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure encoder cost, pipeline overhead, scaling, a live run and start-up",
        description=(
            "Measure, on this machine and in one run: encoder cost per modality (CPU "
            "float32, CPU bfloat16 where the CPU runs it natively, CUDA float16 when a GPU "
            "is present), the pipeline's overhead over the bare model forward, scaling with "
            "faces per frame, audio window and text length, a sustained live run on "
            "replayed media, start-up time, the fer package on the same video where it "
            "can run, and emoapp batch throughput (local and Ray, 1 and 2 workers). The "
            "models are random-weight copies of the default architectures, built once into "
            "a cache folder; the precision part also measures the real models pulled here "
            "(--real-models). Prints a table and writes JSON."
        ),
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="write the results here (default: last-run.json in the cache folder)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions, fewer scaling points, a 10 s live run (about a minute)",
    )
    parser.add_argument(
        "--models",
        choices=("tiny", "full", "large"),
        default="full",
        help="full: the cpu profile's full-size architectures (default); large: the default "
        "profile's (HuBERT-large, RoBERTa-large); tiny: a smoke test",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="seconds of the measured live run (default 60; 10 with --quick)",
    )
    parser.add_argument(
        "--skip",
        metavar="PART,...",
        default="",
        help="parts to leave out: precision, encoders, scaling, live, explain, startup, "
        "peers, batch, asr",
    )
    parser.add_argument(
        "--part",
        metavar="PART,...",
        default="",
        help="run only these parts (e.g. --part precision: measure float32, bfloat16 and "
        "int8 on this CPU and keep the result for --dtype auto)",
    )
    parser.add_argument(
        "--real-models",
        metavar="WHAT",
        default="all",
        help="the precision part also measures these real (pulled) models where they are "
        "present locally, under the ids and revisions --dtype auto looks up: all (every "
        "hub model of the registry; default), none, or a comma-separated list of profile "
        "names (cpu, default), model ids (org/name[@revision]) and local model folders; "
        "models not present are listed, not measured",
    )
    parser.add_argument(
        "--real-models-dir",
        metavar="DIR",
        help="the models folder the real models load from, as `emoapp live --models-dir` "
        "(default: EMOAPP_MODELS_DIR, else the Hugging Face cache)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CPU, and CUDA when present), cpu, or cuda[:N] (CUDA only)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="where the benchmark models are built and reused (default: "
        "EMOAPP_BENCH_DIR or ~/.cache/emoapp-bench)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads (default: torch's choice, one per core; the live run: per "
        "worker, default from the cores as `emoapp live` does)",
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="run only the live part, with this profile's models (embedded and baseline "
        "as shipped; cpu and default as random-weight full-size architectures), and judge "
        "it against that profile's live targets",
    )
    parser.add_argument(
        "--window",
        action="store_true",
        help="with --profile: run the live session inside the real main window (offscreen "
        "when there is no display, or under Xvfb) and measure the window's event-loop lag "
        "(p50/p99 of a 10 ms UI timer's lateness); needs PySide6",
    )
    parser.add_argument(
        "--face-detect-every",
        type=int,
        default=5,
        metavar="N",
        help="the live run detects faces on one frame in N, as `emoapp live` (default: 5)",
    )
    parser.add_argument(
        "--face-reclassify-after",
        type=float,
        default=1.0,
        metavar="S",
        help="the live run lets a tracked, unchanged face keep its classification for up "
        "to S seconds, as `emoapp live` (0: classify every frame; default: 1)",
    )
    parser.add_argument(
        "--fer-python",
        metavar="PYTHON",
        help="a Python interpreter that can import fer, to time it on the same "
        "video (default: EMOAPP_BENCH_FER_PYTHON, else this one if it can)",
    )
    parser.set_defaults(func=run)


def _as_argv(args: argparse.Namespace) -> list[str]:
    """The options of this run, for the record."""
    argv = ["--models", args.models, "--device", args.device]
    if args.quick:
        argv.append("--quick")
    if args.duration is not None:
        argv += ["--duration", f"{args.duration:g}"]
    if args.skip:
        argv += ["--skip", args.skip]
    if args.part:
        argv += ["--part", args.part]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.profile is not None:
        argv += ["--profile", args.profile]
    if args.face_detect_every != 5:
        argv += ["--face-detect-every", str(args.face_detect_every)]
    if args.face_reclassify_after != 1.0:
        argv += ["--face-reclassify-after", f"{args.face_reclassify_after:g}"]
    if args.real_models != "all":
        argv += ["--real-models", args.real_models]
    if args.real_models_dir is not None:
        argv += ["--real-models-dir", args.real_models_dir]
    if args.window:
        argv.append("--window")
    if args.json is not None:
        argv += ["--json", str(args.json)]
    return argv


def run(args: argparse.Namespace) -> int:
    from emoapp.bench.common import BenchConfig, BenchError, parts_to_skip, say
    from emoapp.bench.report import failed_parts, render_table, run_bench, write_json

    skip = frozenset(p.strip() for p in args.skip.split(",") if p.strip())
    only = frozenset(p.strip() for p in args.part.split(",") if p.strip())
    if only and args.profile is not None:
        raise BenchError("--part and --profile do not go together (--profile runs the live part)")
    skip = parts_to_skip(skip, only)
    config = BenchConfig(
        size=args.models,
        quick=args.quick,
        live_duration_s=args.duration,
        skip=skip,
        device=args.device,
        models_dir=args.models_dir,
        fer_python=args.fer_python,
        json_path=args.json,
        threads=args.threads,
        argv=_as_argv(args),
        profile=args.profile,
        face_detect_every=args.face_detect_every,
        face_reclassify_after=args.face_reclassify_after,
        real_models=args.real_models,
        real_models_dir=args.real_models_dir,
        window=args.window,
    )
    if config.profile is not None:
        from emoapp.bench.profile import render_profile, run_profile_bench

        result = run_profile_bench(config)
        path = write_json(result, config.json_path or config.cache_dir() / "last-run.json")
        print(render_profile(result))
        print(f"\nJSON: {path}")
        return 1 if result["live"].get("status") == "failed" else 0
    result = run_bench(config)
    path = write_json(result, config.json_path or config.cache_dir() / "last-run.json")
    print(render_table(result))
    print(f"\nJSON: {path}")
    failed = failed_parts(result)
    if failed:
        say(f"parts that could not run: {', '.join(failed)} (see the JSON)")
        return 1
    return 0
