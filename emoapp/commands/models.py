"""``emoapp models``: list the registry and profiles, pull models once, verify them, and
show a model's card summary and label mapping.

Only ``pull`` touches the network; everything else reads local files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS

DEFAULT_PULL = "default"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, pull, verify and describe models",
        description="Manage the models emoapp runs. Models are pulled once from the Hugging "
        "Face hub into the models directory (--models-dir, else EMOAPP_MODELS_DIR, else the "
        "Hugging Face cache: HF_HUB_CACHE / HF_HOME) and load offline from then on. The "
        "baseline profile needs no download.",
    )
    parser.set_defaults(func=run, action="list")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    def common(sub: argparse.ArgumentParser, top: bool = False) -> None:
        # On the actions, an option not given must not overwrite one given before the
        # action (``emoapp models --models-dir X pull``): SUPPRESS leaves it alone.
        default = None if top else argparse.SUPPRESS
        sub.add_argument(
            "--models-dir",
            default=default,
            help="where pulled models live (default: EMOAPP_MODELS_DIR or the Hugging Face cache)",
        )
        sub.add_argument(
            "--profiles-file", type=Path, default=default, help="an extra profile TOML file"
        )

    common(parser, top=True)
    sub = actions.add_parser("list", help="the registry and profiles, and what is downloaded")
    common(sub)
    sub = actions.add_parser(
        "pull",
        help="download a profile's models or one model",
        description="Download a profile's models (default: the "
        "'default' profile) or one model: a registry id, or a hub id "
        "org/name[@revision]. Records each file's checksum. A registry model is fetched at "
        "its pinned commit; when the hub no longer has it, --revision latest fetches the "
        "newest commit instead and records it in your profile file, so that the model "
        "loads at that commit from then on (offline too).",
    )
    sub.add_argument("target", nargs="?", default=DEFAULT_PULL, metavar="PROFILE|MODEL")
    sub.add_argument(
        "--force",
        action="store_true",
        help="download again even if present (repairs a damaged copy)",
    )
    sub.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub.add_argument(
        "--revision",
        metavar="latest|SHA",
        help="one model only: fetch the hub's newest commit (latest) or this commit in "
        "place of the registry's pin, and record it in your profile file",
    )
    common(sub)
    sub = actions.add_parser("verify", help="re-check pulled models against their checksums")
    sub.add_argument(
        "target",
        nargs="?",
        metavar="PROFILE|MODEL",
        help="what to check (default: every pulled model)",
    )
    common(sub)
    sub = actions.add_parser("info", help="a model's card summary and label mapping")
    sub.add_argument(
        "target", metavar="MODEL", help="registry id, hub id[@revision] or local directory"
    )
    common(sub)


def run(args: argparse.Namespace) -> int:
    action = args.action or "list"
    if action == "pull":
        return run_pull(args)
    if action == "verify":
        return run_verify(args)
    if action == "info":
        return run_info(args)
    return run_list(args)


# --- list -------------------------------------------------------------------------------


def _size(size_bytes: int | None, size_mb: float) -> str:
    if size_bytes is not None:
        return f"{size_bytes / 1e6:,.0f} MB" if size_bytes >= 1e6 else f"{size_bytes / 1e3:,.0f} kB"
    if not size_mb:
        return "-"
    return f"~{size_mb:,.0f} MB" if size_mb >= 1 else f"~{size_mb * 1000:,.0f} kB"


def _state_word(
    model_id: str, revision: str | None, baseline: bool, models_dir: str | None
) -> tuple[str, int | None]:
    from emoapp import modelstore

    if baseline:
        return "built in", None
    state = modelstore.local_state(model_id, revision, models_dir)
    if state.manifest is not None and state.present:
        return "pulled", state.size
    if state.present:
        return "in cache", None
    return "not downloaded", None


def run_list(args: argparse.Namespace) -> int:
    from emoapp import modelstore
    from emoapp.registry import profiles, registry

    models_dir = getattr(args, "models_dir", None)
    entries = registry()
    all_profiles = profiles(getattr(args, "profiles_file", None))
    used_in: dict[str, list[str]] = {}
    for profile in all_profiles.values():
        for ref in profile.models.values():
            if ref:
                used_in.setdefault(ref.partition("@")[0], []).append(profile.name)

    print(f"Models directory: {modelstore.models_dir(models_dir)}")
    for modality in Modality:
        print(f"\n{modality.value} models")
        rows = []
        for entry in entries.values():
            if entry.modality is not modality:
                continue
            state, size = _state_word(entry.id, entry.revision, entry.bundled, models_dir)
            tag = f" ({entry.backend})" if entry.bundled else ""
            profiles_of = ", ".join(used_in.get(entry.id, [])) or "-"
            rows.append(
                (entry.id + tag, state, _size(size, entry.size_mb), entry.license, profiles_of)
            )
        width = max(len(r[0]) for r in rows) if rows else 0
        for name, state, shown_size, licence, profiles_of in rows:
            print(f"  {name:<{width}}  {state:<14}  {shown_size:>8}  profiles: {profiles_of}")
            print(f"  {'':<{width}}  licence: {licence}")

    print("\nprofiles")
    for profile in all_profiles.values():
        origin = "" if profile.origin == "built-in" else f" (from {profile.origin})"
        print(f"  {profile.name}: {profile.description}{origin}")
        for modality in Modality:
            ref = profile.models.get(modality)
            if not ref:
                print(f"    {modality.value:<5}  off")
                continue
            named = entries.get(ref.partition("@")[0])
            if named is not None:
                state, _ = _state_word(
                    named.id, ref.partition("@")[2] or named.revision, named.bundled, models_dir
                )
            elif Path(ref).expanduser().is_dir():
                state = "local directory"
            elif "/" in ref:
                model, _, revision = ref.partition("@")
                state, _ = _state_word(model, revision or None, False, models_dir)
            else:
                state = "missing directory"
            print(f"    {modality.value:<5}  {ref}  [{state}]")
    print(
        "\nGet the models of a profile with `emoapp models pull PROFILE` (default: default); "
        "the baseline profile needs no download."
    )
    return 0


# --- pull / verify ------------------------------------------------------------------------


def run_pull(args: argparse.Namespace) -> int:
    from emoapp import modelstore

    def note(text: str) -> None:
        print(f"  {text}")

    print(f"Pulling {args.target} into {modelstore.models_dir(args.models_dir)}")
    results = modelstore.pull(
        args.target,
        args.models_dir,
        progress=not args.no_progress and sys.stderr.isatty(),
        force=args.force,
        extra_profiles=args.profiles_file,
        on_skip=note,
        revision=getattr(args, "revision", None),
    )
    for result in results:
        what = "already pulled, files check out" if result.status == "present" else "pulled"
        print(
            f"  {result.id}@{result.revision[:12]}: {what} "
            f"({len(result.manifest.files)} files, {_size(result.size, 0)})"
        )
        for name in result.known:
            print(f"    {name}: sha256 matches the one public evidence records for this commit")
    if getattr(args, "revision", None) and results:
        _say_recorded(results[0].id, results[0].revision)
    if not results:
        print("  nothing to download")
    return 0


def _say_recorded(model_id: str, commit: str) -> None:
    from emoapp.registry import find_entry, user_profiles_path

    entry = find_entry(model_id)
    if entry is None:
        return
    if commit == entry.revision:
        print(f"  {model_id} is at the registry's pin; it loads at that commit")
    else:
        print(
            f"  recorded in {user_profiles_path()}: {model_id} loads at {commit[:12]} "
            f"(the registry pins {(entry.revision or '-')[:12]})"
        )


def run_verify(args: argparse.Namespace) -> int:
    from emoapp import modelstore

    reports = modelstore.verify(args.target, args.models_dir, args.profiles_file)
    if not reports:
        print(
            f"No pulled models in {modelstore.models_dir(args.models_dir)}; "
            "`emoapp models pull` fetches the default profile's."
        )
        return 0
    for report in reports:
        print(report.describe())
    bad = [r for r in reports if r.status == "damaged"]
    return 1 if bad else 0


# --- info -------------------------------------------------------------------------------


def _resolve_any(ref: str):  # -> ModelSpec
    from emoapp.registry import RegistryError, find_entry, resolve_model

    entry = find_entry(ref)
    if entry is not None:
        spec = resolve_model(entry.modality, ref)
        assert spec is not None
        return spec
    if ref.startswith(("baseline/", "embedded/")):
        raise RegistryError(f"unknown built-in model {ref!r}; `emoapp models list` shows them")
    path = Path(ref).expanduser()
    if not path.is_dir() and "/" not in ref:
        raise RegistryError(
            f"{ref!r} is not a registry model, a hub id (org/name) or a "
            "local directory; `emoapp models list` shows the registry"
        )
    # A model outside the registry: its modality is only known from its config.
    return resolve_model(Modality.TEXT, ref)


def run_info(args: argparse.Namespace) -> int:
    from emoapp import modelstore
    from emoapp.core.labelmap import build_label_map

    spec = _resolve_any(args.target)
    entry = spec.entry
    print(spec.model + (f"  ({spec.backend}: built in, no download)" if spec.bundled else ""))
    if entry is not None:
        rows = [
            ("modality", entry.modality.value),
            ("task", entry.task),
            ("revision", _revision_row(spec.revision, spec.revision_origin, entry.revision)),
            ("pin confirmed", entry.revision_source or "-"),
            *[(f"sha256 {name}", digest) for name, digest in sorted(entry.file_sha256.items())],
            ("architecture", entry.architecture),
            ("size", _size(None, entry.size_mb)),
            ("licence", entry.license),
            ("training data", entry.training_data),
            ("reported", entry.reported),
            ("limits", entry.limits),
            ("fusion reliability prior", f"{entry.reliability:g}"),
            *([("why (profiles)", entry.why)] if entry.why else []),
        ]
    else:
        rows = [("registry", "not in emoapp's registry: no curated card")]
        if spec.revision:
            rows.append(("revision", spec.revision))
    if not spec.bundled and not spec.is_local_dir:
        state, size = _state_word(spec.model, spec.revision, False, args.models_dir)
        where = modelstore.local_state(spec.model, spec.revision, args.models_dir).snapshot
        rows.append(
            (
                "local copy",
                state + (f", {_size(size, 0)}" if size else "") + (f" at {where}" if where else ""),
            )
        )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")

    print("  label mapping (model label -> canonical)")
    if spec.bundled:
        from emoapp.encoders.factory import bundled_mask

        mask = bundled_mask(spec)
        can = [label for label, m in zip(CANONICAL_LABELS, mask, strict=True) if m]
        print(f"    its own labels: {', '.join(can)}")
        _print_cannot(can)
        return 0
    config = modelstore.local_config(spec, args.models_dir)
    if config is None:
        print(
            f"    not downloaded: `emoapp models pull {spec.model}` fetches it (the label "
            "mapping is read from its config.json)"
        )
        return 0
    id2label = config.get("id2label")
    if not id2label:
        raise EmoappError(f"{spec.model}'s config.json has no id2label")
    label_map = build_label_map(spec.model, id2label, spec.label_overrides)
    raw_width = max(len(raw) for raw, _ in label_map.describe())
    for raw, target in label_map.describe():
        print(f"    {raw:<{raw_width}} -> {target}")
    _print_cannot([label for label, m in zip(CANONICAL_LABELS, label_map.mask, strict=True) if m])
    return 0


def _revision_row(revision: str | None, origin: str, pin: str | None) -> str:
    if not revision:
        return "-"
    if origin == "user":
        return f"{revision} (recorded by `emoapp models pull --revision`; the registry pins {pin})"
    if origin == "given":
        return f"{revision} (as given; the registry pins {pin})"
    return revision


def _print_cannot(can: list[str]) -> None:
    cannot = [label for label in CANONICAL_LABELS if label not in can]
    if cannot:
        print(f"    cannot express (casts no vote on): {', '.join(cannot)}")
