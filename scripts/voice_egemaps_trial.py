#!/usr/bin/env python3
"""A trial, not the shipped recipe: do openSMILE's eGeMAPSv02 functionals (88 per window;
Eyben et al. 2016, the usual feature set for cross-corpus speech emotion) help the
embedded voice model on corpora it never heard?

    scripts/voice_egemaps_trial.py [--data ../shared/data] [--shipped-cache DIR]
                                   [--cache DIR] [--holdout-actors 15-18] [--seeds 0]
                                   [--sets a,b] [--egemaps-level raw|rms] [--reproduce]
                                   [--lso] [--report FILE]
    scripts/voice_egemaps_trial.py --tables REPORT [REPORT ...]

1. Windows: exactly those of ``scripts/voice_corpora.py`` (its item lists, the app's
   windowing and voice-activity gate). Each gated window is described by
   ``opensmile.Smile(eGeMAPSv02, Functionals).process_signal`` and cached under
   ``--cache``. RAVDESS actors in ``--holdout-actors`` (default 15-18, the project's
   held-out actors) are never read. The windows are checked against the shipped recipe's
   cached features (``--shipped-cache``, written by ``scripts/voice_corpora.py``): the
   same clip for every window, in the same order, and the shipped features recomputed on
   a sample of the windows equal the cached ones.
2. ``--reproduce``: the shipped candidate (base+emb, z-score k=128, MLP h=64) on the
   shipped cached features of every clip (actors 01-18), leave-one-corpus-out: must
   give the published 0.453 / 0.360.
3. The comparison, on the pool without the held-out actors, with the shipped protocol
   (``scripts/train_embedded_voice.py``'s ``loco``: train on four corpora, score the
   fifth; shrunk per-speaker z-score k=128 on every feature; MLP h=64, alpha 3; clips
   scored by the mean of their windows' probabilities; (a) balanced speakers, (b)
   one-emotion speakers) for the feature sets base+emb (shipped), egemaps+emb,
   base+egemaps+emb and egemaps alone; per corpus, per sex, and per-corpus paired
   differences against base+emb (with an exact sign test over the clips whose
   correctness differs). ``--sets`` also takes egemaps-lf, egemaps-lf+emb and
   base+egemaps-lf+emb: eGeMAPS without its 19 level-dependent functionals;
   ``--egemaps-level rms`` describes each window scaled to -20 dBFS instead (cached
   apart). ``--lso``: leave-speakers-out (5 speaker-grouped folds over all corpora pooled)
   for the same sets. ``--tables``: the Markdown tables of reports already written.

Needs ``opensmile`` (the ``egemaps`` extra: ``pip install -e .[egemaps]``). Its licence
is audEERING's research licence (non-commercial), not the MIT its PyPI classifier
names: see docs/guide/voice.md.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import train_embedded_voice as T  # noqa: E402
import voice_corpora as V  # noqa: E402

N_EGEMAPS = 88
SHIPPED = T.CANDIDATES[9]  # base+emb / z-score all k=128 / mlp h=64 a=3
FEATURE_SETS = ("base+emb", "egemaps+emb", "base+egemaps+emb", "egemaps")
SAMPLE_RATE = 16_000


def egemaps_extractor() -> Any:
    """openSMILE's eGeMAPSv02 functionals (88 numbers per signal)."""
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def window_egemaps(smile: Any, samples: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The 88 eGeMAPSv02 functionals of one window (float64)."""
    row = smile.process_signal(np.asarray(samples, dtype=np.float32), sr)
    out = row.to_numpy(dtype=np.float64).reshape(-1)
    if out.shape != (N_EGEMAPS,):
        raise ValueError(f"eGeMAPS gave {out.shape[0]} numbers, expected {N_EGEMAPS}")
    return out


@functools.cache
def egemaps_names() -> tuple[str, ...]:
    return tuple(egemaps_extractor().feature_names)


def level_dependent(name: str) -> bool:
    """Whether an eGeMAPSv02 functional scales with the recording level (the absolute
    loudness statistics, the equivalent sound level, the mean spectral flux and the
    spectral slopes, all on unnormalised spectra); the shipped features are level-free."""
    return (
        (name.startswith("loudness_sma3_") and name != "loudness_sma3_stddevNorm")
        or name == "equivalentSoundLevel_dBp"
        or (name.startswith("spectralFlux") and name.endswith("_amean"))
        or name.startswith(("slopeV", "slopeUV"))
    )


def trial_columns(features: str) -> np.ndarray:
    """Columns of a trial pool laid out [base 88, mel 40, emb 256, egemaps 88] (the
    shipped layout with eGeMAPS appended)."""
    base = np.arange(T.N_BASE)
    emb = np.arange(T.N_BASE + T.N_MEL, T.N_BASE + T.N_MEL + T.N_EMB)
    start = T.N_BASE + T.N_MEL + T.N_EMB
    ege = np.arange(start, start + N_EGEMAPS)
    free = (
        np.array([not level_dependent(n) for n in egemaps_names()]) if "-lf" in features else None
    )
    sets = {
        "base": base,
        "base+emb": np.concatenate([base, emb]),
        "egemaps": ege,
        "egemaps+emb": np.concatenate([ege, emb]),
        "base+egemaps+emb": np.concatenate([base, ege, emb]),
    }
    if free is not None:
        lf = ege[free]
        sets.update(
            {
                "egemaps-lf": lf,
                "egemaps-lf+emb": np.concatenate([lf, emb]),
                "base+egemaps-lf+emb": np.concatenate([base, lf, emb]),
            }
        )
    if features not in sets:
        raise ValueError(f"unknown feature set {features!r}")
    return sets[features]


@contextmanager
def trial_layout() -> Iterator[None]:
    """Let the training script's ``fit`` pick this trial's feature sets."""
    original = T.columns
    T.columns = trial_columns
    try:
        yield
    finally:
        T.columns = original


def held_out(items: Sequence[Any], corpus: str, actors: set[int]) -> np.ndarray:
    """Which items are held-out RAVDESS actors (never read)."""
    return np.array(
        [corpus == "ravdess" and int(i.meta["actor"]) in actors for i in items], dtype=bool
    )


def _key(actors: set[int]) -> str:
    import opensmile

    text = json.dumps([V._key(), opensmile.__version__, sorted(actors)])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


LEVEL_RMS = 0.1  # -20 dBFS


def at_level(samples: np.ndarray, rms: float = LEVEL_RMS) -> np.ndarray:
    """The window scaled to a root-mean-square level of ``rms`` (silence unchanged)."""
    x = np.asarray(samples, dtype=np.float64)
    now = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    return (x * (rms / now) if now > 0 else x).astype(np.float32)


def extract_egemaps(
    data: Path,
    corpus: str,
    cache: Path,
    actors: set[int],
    check_every: int = 50,
    level: str = "raw",
) -> dict[str, np.ndarray]:
    """eGeMAPS of every gated window of ``corpus`` (held-out actors skipped), in the order
    ``voice_corpora.extract`` writes windows; with the shipped features recomputed on
    the windows of every ``check_every``-th clip, to check the windows are the same.
    ``level="rms"``: each window is first scaled to a fixed level (:func:`at_level`)."""
    if level not in ("raw", "rms"):
        raise ValueError(f"level must be raw or rms, not {level!r}")
    tag = "egemaps" if level == "raw" else "egemaps-rms"
    part = cache / f"{corpus}-{tag}-{_key(actors)}.npz"
    if not part.is_file():
        from emoapp.encoders.embedded.voice import DEFAULT_FEATURES, window_features

        items = V.items_of(data, corpus)
        skip = held_out(items, corpus, actors)
        settings = {**DEFAULT_FEATURES, "mel_means": True}
        smile = egemaps_extractor()
        rows: list[np.ndarray] = []
        check_x: list[np.ndarray] = []
        owners: list[int] = []
        index: list[int] = []
        check_rows: list[int] = []
        for i, k, samples in V.speech_windows(items, corpus, skip):
            if i % check_every == 0:
                check_rows.append(len(rows))
                check_x.append(window_features(samples, settings))
            rows.append(
                window_egemaps(smile, at_level(samples) if level == "rms" else samples, SAMPLE_RATE)
            )
            owners.append(i)
            index.append(k)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(
            part,
            x=np.asarray(rows, dtype=np.float64).reshape(-1, N_EGEMAPS),
            owner=np.asarray(owners, dtype=np.int64),
            index=np.asarray(index, dtype=np.int64),
            check_rows=np.asarray(check_rows, dtype=np.int64),
            check_x=np.asarray(check_x, dtype=np.float64),
        )
    with np.load(part) as f:
        return {k: f[k] for k in f.files}


def align(shipped: V.Corpus, ege: dict[str, np.ndarray], skip: np.ndarray) -> dict[str, Any]:
    """Check the trial's windows are the shipped cache's (same clips, same order, same
    shipped features on the sample); return the shipped rows they are."""
    keep = ~skip[shipped.clip]
    if not np.array_equal(shipped.clip[keep], ege["owner"]):
        raise SystemExit(
            f"{shipped.name}: windows differ from the shipped cache "
            f"({int(keep.sum())} shipped windows, {len(ege['owner'])} here)"
        )
    rows = np.flatnonzero(keep)
    diff = 0.0
    if len(ege["check_rows"]):
        cached = shipped.x[rows[ege["check_rows"]]]
        diff = float(np.max(np.abs(cached - ege["check_x"])))
        if not np.allclose(cached, ege["check_x"], rtol=1e-6, atol=1e-8):
            raise SystemExit(f"{shipped.name}: recomputed features differ (max {diff:.3g})")
    return {"rows": rows, "checked_windows": len(ege["check_rows"]), "max_abs_diff": diff}


def trial_pool(
    corpora: Sequence[V.Corpus], eges: Sequence[np.ndarray], rows: Sequence[np.ndarray]
) -> T.Pool:
    """The shipped pool of the kept windows, with their eGeMAPS appended."""
    full = T.pool(corpora)
    offsets = np.cumsum([0] + [len(c.x) for c in corpora])
    keep = np.concatenate([r + o for r, o in zip(rows, offsets[:-1], strict=True)])
    data = T.Pool(
        np.hstack([full.x[keep], np.vstack(eges)]),
        full.y[keep],
        full.clip[keep],
        full.speaker[keep],
        full.sex[keep],
        full.corpus[keep],
        full.n_clips,
    )
    return data


def candidate(features: str) -> T.Candidate:
    return T.Candidate(
        features,
        SHIPPED.adapt,
        SHIPPED.prior,
        SHIPPED.kind,
        SHIPPED.c,
        SHIPPED.hidden,
        scale=SHIPPED.scale,
    )


def clip_hits(p: np.ndarray, data: T.Pool, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids, whether each clip's mean window probabilities pick its label)."""
    ids, cp = T.clip_probs(p[rows], data.clip[rows])
    first = {c: i for i, c in zip(np.flatnonzero(rows), data.clip[rows], strict=True)}
    gold = np.array([data.y[first[c]] for c in ids])
    return ids, cp.argmax(1) == gold


def paired(p: np.ndarray, q: np.ndarray, data: T.Pool, rows: np.ndarray) -> dict[str, float | int]:
    """Clip accuracy of ``p`` minus that of ``q`` on ``rows``, the clips only one gets
    right, and the exact two-sided sign-test p-value over those."""
    from scipy.stats import binomtest

    _, a = clip_hits(p, data, rows)
    _, b = clip_hits(q, data, rows)
    better, worse = int(np.sum(a & ~b)), int(np.sum(~a & b))
    pval = binomtest(better, better + worse).pvalue if better + worse else 1.0
    return {
        "diff": float(a.mean() - b.mean()),
        "only_this": better,
        "only_base": worse,
        "p": float(pval),
    }


def run_loco(data: T.Pool, features: str, seed: int, names: Sequence[str]) -> dict[str, Any]:
    started = time.perf_counter()
    with trial_layout():
        r = T.loco(candidate(features), data, seed, names)
    a, a_se = T.mean_of(r["folds"], "a")
    b, b_se = T.mean_of(r["folds"], "b")
    print(
        f"  {features:18s} seed {seed}: LOCO (a) {a:.3f} ± {a_se:.3f}  (b) {b:.3f} ± {b_se:.3f}  "
        + " ".join(
            f"{k}={v['a']['accuracy']:.3f}/{v['b']['accuracy']:.3f}" for k, v in r["folds"].items()
        )
        + f"  ({time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )
    return {
        "folds": r["folds"],
        "oof_a": r["oof_a"],
        "oof_b": r["oof_b"],
        "a": (a, a_se),
        "b": (b, b_se),
    }


def se(v: np.ndarray) -> float:
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def _cell(v: float, d: int = 3) -> str:
    return f"{v:.{d}f}"


def tables(report: dict[str, Any]) -> str:
    """The report as Markdown tables (means over the seeds run)."""
    out: list[str] = []
    loco = report.get("loco", {})
    sets = list(loco)
    names = list(V.CORPORA)
    rms = report.get("egemaps_level") == "rms"

    def label(fs: str) -> str:
        """The set's name, eGeMAPS of level-normalised windows marked ``egemaps-rms``."""
        return fs.replace("egemaps", "egemaps-rms") if rms else fs

    if "reproduce" in report:
        r = report["reproduce"]
        out.append(
            "Shipped candidate on the shipped cache (actors 01-18), seed 0: "
            f"LOCO (a) {r['a'][0]:.3f} ± {r['a'][1]:.3f}, (b) {r['b'][0]:.3f} ± {r['b'][1]:.3f}; "
            + ", ".join(
                f"{c} {v['a']['accuracy']:.3f} / {v['b']['accuracy']:.3f}"
                for c, v in r["folds"].items()
            )
            + "\n"
        )
    if not loco:
        return "\n".join(out)

    def fold(fs: str, c: str, part: str, key: str = "accuracy") -> float:
        v = [r["folds"][c][part].get(key, np.nan) for k, r in loco[fs].items() if k.isdigit()]
        return float(np.mean(v))

    seeds = [k for k in loco[sets[0]] if k.isdigit()]
    out.append(f"LOCO, mean over seeds {', '.join(seeds)} (clip accuracy, (a) / (b)):\n")
    out.append(
        "| features | "
        + " | ".join(f"{c} (a) / (b)" for c in names)
        + " | mean (a) | mean (b) | (a) vs base+emb | (b) vs base+emb | mean (a) per seed |"
    )
    out.append("|---" * (len(names) + 6) + "|")
    for fs in sets:
        a = np.array([fold(fs, c, "a") for c in names])
        b = np.array([fold(fs, c, "b") for c in names])
        row = [label(fs)] + [f"{x:.3f} / {y:.3f}" for x, y in zip(a, b, strict=True)]
        row += [f"{a.mean():.3f} ± {se(a):.3f}", f"{b.mean():.3f} ± {se(b):.3f}"]
        for part in ("a", "b"):
            d = loco[fs].get(f"fold_diff_{part}")
            row.append(f"{d[0]:+.3f} ± {d[1]:.3f}" if d else "-")
        row.append(", ".join(f"{loco[fs][k]['a'][0]:.3f}" for k in seeds))
        out.append("| " + " | ".join(row) + " |")
    out.append("\nLOCO per sex, mean over seeds ((a) / (b)):\n")
    out.append("| features | ravdess female | ravdess male | emodb female | emodb male |")
    out.append("|---|---|---|---|---|")
    for fs in sets:
        row = [label(fs)]
        for c in ("ravdess", "emodb"):
            for sex in ("female", "male"):
                key = f"accuracy_{sex}"
                row.append(f"{fold(fs, c, 'a', key):.3f} / {fold(fs, c, 'b', key):.3f}")
        out.append("| " + " | ".join(row) + " |")
    first = seeds[0]
    if any("paired_vs_base+emb" in loco[fs][first] for fs in sets):
        out.append(
            f"\nLOCO, paired against base+emb per held-out corpus (seed {first}): accuracy "
            "difference (clips only this set gets right / only base+emb gets right, exact "
            "sign-test p):\n"
        )
        out.append("| features | part | " + " | ".join(names) + " |")
        out.append("|---|---" + "|---" * len(names) + "|")
        for fs in sets:
            pv = loco[fs][first].get("paired_vs_base+emb")
            if not pv:
                continue
            for part in ("a", "b"):
                cells = [
                    f"{v['diff']:+.3f} ({v['only_this']}/{v['only_base']}, p {v['p']:.2g})"
                    for v in (pv[part][c] for c in names)
                ]
                out.append(f"| {label(fs)} | ({part}) | " + " | ".join(cells) + " |")
    lso = report.get("lso")
    if lso:
        out.append(
            "\nLeave-speakers-out (5 speaker-grouped folds, all corpora pooled), mean over seeds:\n"
        )
        out.append(
            "| features | pooled (a) | pooled (b) | "
            + " | ".join(f"{c} (a) / (b)" for c in names)
            + " | ravdess (a) female / male |"
        )
        out.append("|---|---|---" + "|---" * len(names) + "|---|")
        for fs, by_seed in lso.items():
            runs = list(by_seed.values())

            def m(get: Any, runs: list[Any] = runs) -> float:
                return float(np.mean([get(r) for r in runs]))

            row = [
                label(fs),
                _cell(m(lambda r: r["a"]["accuracy"])),
                _cell(m(lambda r: r["b"]["accuracy"])),
            ]
            for c in names:
                row.append(
                    f"{m(lambda r, c=c: r['per_corpus'][c]['a']['accuracy']):.3f} / "
                    f"{m(lambda r, c=c: r['per_corpus'][c]['b']['accuracy']):.3f}"
                )
            row.append(
                f"{m(lambda r: r['per_corpus']['ravdess']['a']['accuracy_female']):.3f} / "
                f"{m(lambda r: r['per_corpus']['ravdess']['a']['accuracy_male']):.3f}"
            )
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--shipped-cache",
        type=Path,
        default=Path("/tmp/emoapp-cache/voicecal"),
        help="voice_corpora.py's cache of the shipped features (read, never written)",
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/emoapp-cache/smile"))
    parser.add_argument("--holdout-actors", default="15-18", metavar="A-B")
    parser.add_argument("--seeds", default="0", help="MLP seeds, comma-separated")
    parser.add_argument("--sets", default=",".join(FEATURE_SETS))
    parser.add_argument(
        "--reproduce",
        action="store_true",
        help="first the shipped candidate on the shipped cache of every clip (actors 01-18)",
    )
    parser.add_argument("--lso", action="store_true", help="also leave-speakers-out")
    parser.add_argument(
        "--egemaps-level",
        choices=("raw", "rms"),
        default="raw",
        help="rms: scale each window to -20 dBFS before openSMILE (a level-free variant)",
    )
    parser.add_argument("--report", type=Path)
    parser.add_argument(
        "--tables",
        type=Path,
        nargs="+",
        metavar="REPORT",
        help="only print the Markdown tables of reports written by --report",
    )
    args = parser.parse_args(argv)
    if args.tables:
        for path in args.tables:
            print(tables(json.loads(path.read_text())))
        return 0
    from threadpoolctl import threadpool_limits

    lo, _, hi = args.holdout_actors.partition("-")
    actors = set(range(int(lo), int(hi or lo) + 1)) if lo else set()
    names = list(V.CORPORA)
    for c in names:
        part = args.shipped_cache / f"{c}-{V._key()}.npz"
        if not part.is_file():
            raise SystemExit(
                f"{part}: missing; run scripts/voice_corpora.py --cache {args.shipped_cache}"
            )
    report: dict[str, Any] = {
        "holdout_actors": sorted(actors),
        "seeds": args.seeds,
        "egemaps_level": args.egemaps_level,
    }
    with threadpool_limits(1):
        import torch

        torch.set_num_threads(1)
        shipped = [V.extract(args.data, c, args.shipped_cache) for c in names]
        print(
            f"shipped cache: {sum(len(c.x) for c in shipped)} windows, "
            f"{sum(len(c.ids) for c in shipped)} clips",
            file=sys.stderr,
        )
        if args.reproduce:
            full = T.pool(shipped)
            r = run_loco(full, "base+emb", 0, names)
            report["reproduce"] = {"a": r["a"], "b": r["b"], "folds": r["folds"]}
        eges, rows, checks = [], [], {}
        for corpus in shipped:
            ege = extract_egemaps(
                args.data, corpus.name, args.cache, actors, level=args.egemaps_level
            )
            skip = held_out(V.items_of(args.data, corpus.name), corpus.name, actors)
            al = align(corpus, ege, skip)
            checks[corpus.name] = {
                "clips_read": int(np.sum(~skip)),
                "windows": len(al["rows"]),
                "checked_windows": al["checked_windows"],
                "max_abs_diff": al["max_abs_diff"],
                "non_finite": int(np.sum(~np.isfinite(ege["x"]))),
            }
            eges.append(ege["x"])
            rows.append(al["rows"])
            print(f"  {corpus.name}: {checks[corpus.name]}", file=sys.stderr)
        report["windows"] = checks
        data = trial_pool(shipped, eges, rows)
        print(
            f"trial pool: {len(data.y)} windows, {len(np.unique(data.clip))} clips, "
            f"{len(np.unique(data.speaker))} speakers",
            file=sys.stderr,
        )
        sets = args.sets.split(",")
        seeds = [int(s) for s in args.seeds.split(",")]
        results: dict[str, dict[int, dict[str, Any]]] = {s: {} for s in sets}
        for seed in seeds:
            for fs in sets:
                results[fs][seed] = run_loco(data, fs, seed, names)
        report["loco"] = {
            fs: {
                str(seed): {
                    "a": r["a"],
                    "b": r["b"],
                    "folds": r["folds"],
                    **(
                        {
                            "paired_vs_base+emb": {
                                part: {
                                    c: paired(
                                        r[f"oof_{part}"],
                                        results["base+emb"][seed][f"oof_{part}"],
                                        data,
                                        data.corpus == c,
                                    )
                                    for c in names
                                }
                                for part in ("a", "b")
                            }
                        }
                        if fs != "base+emb" and "base+emb" in results
                        else {}
                    ),
                }
                for seed, r in by_seed.items()
            }
            for fs, by_seed in results.items()
        }
        if "base+emb" in results:
            for fs in sets:
                if fs == "base+emb":
                    continue
                for part in ("a", "b"):
                    d = (
                        np.array(
                            [
                                results[fs][s]["folds"][c][part]["accuracy"]
                                - results["base+emb"][s]["folds"][c][part]["accuracy"]
                                for s in seeds
                                for c in names
                            ]
                        )
                        .reshape(len(seeds), len(names))
                        .mean(0)
                    )
                    report["loco"][fs][f"fold_diff_{part}"] = (float(d.mean()), se(d))
                    print(
                        f"  {fs} - base+emb ({part}), per corpus mean over seeds: "
                        + " ".join(f"{c}={v:+.3f}" for c, v in zip(names, d, strict=True))
                        + f"  mean {d.mean():+.3f} ± {se(d):.3f}",
                        file=sys.stderr,
                    )
        if args.lso:
            report["lso"] = {fs: {} for fs in sets}
            every = np.ones(len(data.y), dtype=bool)
            for seed in seeds:
                for fs in sets:
                    started = time.perf_counter()
                    with trial_layout():
                        o = T.leave_speakers_out(candidate(fs), data, seed, unadapted_too=False)
                    pa, pb = o["adapted"]["oof_a"], o["adapted"]["oof_b"]
                    out = {"a": T.scores(pa, data, every), "b": T.scores(pb, data, every)}
                    out["per_corpus"] = {
                        c: {
                            "a": T.scores(pa[data.corpus == c], data, data.corpus == c),
                            "b": T.scores(pb[data.corpus == c], data, data.corpus == c),
                        }
                        for c in names
                    }
                    report["lso"][fs][str(seed)] = out
                    print(
                        f"  LSO {fs:18s} seed {seed}: (a) {out['a']['accuracy']:.3f} "
                        f"(b) {out['b']['accuracy']:.3f} "
                        + " ".join(
                            f"{c}={v['a']['accuracy']:.3f}/{v['b']['accuracy']:.3f}"
                            for c, v in out["per_corpus"].items()
                        )
                        + f"  ({time.perf_counter() - started:.0f} s)",
                        file=sys.stderr,
                    )
    if args.report:
        args.report.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(tables(json.loads(json.dumps(report, default=float))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
