"""Load a transformers model whole, or refuse it with one line that names what is wrong.

``from_pretrained`` builds the class the config asks for and fills it from the checkpoint;
a weight the checkpoint lacks is initialised at random, a checkpoint tensor the class has
no place for is dropped, and transformers only logs a warning table. A classifier whose
head was saved under other names (``classifier.dense.*`` where the class expects
``classifier.*``) then answers at chance with no visible sign. :func:`load_whole` asks
for the loading information (``output_loading_info=True``, with mismatched shapes reported
rather than raised) and accepts the model only when nothing was newly initialised and no
checkpoint tensor went unused. Otherwise a known head layout
(:mod:`emoapp.encoders.heads`) may take the checkpoint, chosen by the tensor names and
shapes the checkpoint actually holds, never by the model's name; failing that, the load
is refused with :class:`~emoapp.core.errors.ModelLoadError`.

Both checkpoint formats are read: ``*.safetensors`` (headers only, no tensor is loaded to
list them) and ``pytorch_model*.bin`` (``torch.load`` with ``weights_only=True``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoapp.core.errors import ModelLoadError

SHOWN_KEYS = 6
"""How many keys of each kind the one-line refusal names before it says how many more."""

_REPORT_LOGGERS = (
    "transformers.utils.loading_report",
    "transformers.modeling_utils",
    "transformers.distributed.tensor_parallel",  # "layers were not sharded" on a bad load
)


@dataclass(frozen=True)
class LoadProblems:
    """What ``from_pretrained`` reported beyond a clean load."""

    missing: tuple[str, ...] = ()
    """Weights of the built class that the checkpoint lacks: initialised at random."""
    unexpected: tuple[str, ...] = ()
    """Checkpoint tensors the built class has no place for: dropped."""
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()
    """(key, checkpoint shape, model shape): initialised at random."""
    errors: tuple[str, ...] = ()

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> LoadProblems:
        mismatched = []
        for item in info.get("mismatched_keys") or ():
            key, *shapes = item
            got = tuple(int(n) for n in shapes[0]) if shapes else ()
            want = tuple(int(n) for n in shapes[1]) if len(shapes) > 1 else ()
            mismatched.append((str(key), got, want))
        return cls(
            missing=tuple(sorted(info.get("missing_keys") or ())),
            unexpected=tuple(sorted(info.get("unexpected_keys") or ())),
            mismatched=tuple(sorted(mismatched)),
            errors=tuple(str(e) for e in info.get("error_msgs") or ()),
        )

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.errors)

    def describe(self, model_id: str, built: str) -> str:
        """One line: which weights would be random, which tensors unused."""
        parts = []
        if self.missing:
            parts.append(f"weights not in the checkpoint (would be random): {_keys(self.missing)}")
        if self.mismatched:
            shapes = [f"{k} {list(got)} vs {list(want)}" for k, got, want in self.mismatched]
            parts.append(f"weights of another shape (would be random): {_keys(shapes)}")
        if self.unexpected:
            parts.append(f"checkpoint tensors left unused: {_keys(self.unexpected)}")
        if self.errors:
            parts.append(f"errors: {_keys(self.errors)}")
        return (
            f"model {model_id!r} does not load whole into {built}, and no known head layout "
            f"takes it: {'; '.join(parts)}. Refusing to run it with untrained weights"
        )


def _keys(keys: Sequence[str]) -> str:
    shown = ", ".join(str(k).splitlines()[0] for k in keys[:SHOWN_KEYS])
    more = len(keys) - SHOWN_KEYS
    return f"{shown} (and {more} more)" if more > 0 else shown


@contextlib.contextmanager
def quiet_load_report() -> Iterator[None]:
    """Keep transformers' multi-line load-report table off stderr: :func:`load_whole`
    turns the same facts into one line."""
    saved = []
    for name in _REPORT_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


@dataclass
class Loaded:
    """A model that loaded whole, and the head layout that built it (empty: transformers'
    own class for the config)."""

    model: Any
    head: str = ""


def load_whole(
    transformers: Any,
    auto_model: str,
    source: str,
    kwargs: dict[str, Any],
    model_id: str,
    *,
    heads: Sequence[Any] = (),
) -> Loaded:
    """``transformers.<auto_model>.from_pretrained(source)``, refused unless every weight
    came from the checkpoint and every checkpoint tensor was used; a layout in ``heads``
    (:class:`emoapp.encoders.heads.HeadLayout`) that recognises the checkpoint's own
    tensors takes it instead. Raises ModelLoadError (one line); ValueError and OSError from
    transformers pass through for the caller's messages."""
    model_cls = getattr(transformers, auto_model)
    with quiet_load_report():
        model, info = model_cls.from_pretrained(
            source, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
        )
    problems = LoadProblems.from_info(info)
    if problems.clean:
        return Loaded(model)
    if heads:
        tensors = checkpoint_tensors(transformers, source, kwargs)
        for head in heads:
            if head.matches(tensors, model.config):
                del model
                return Loaded(head.build(transformers, source, kwargs, model_id), head.name)
    raise ModelLoadError(problems.describe(model_id, type(model).__name__))


# --- reading a checkpoint without building a model ----------------------------------------


def checkpoint_dir(transformers: Any, source: str, kwargs: dict[str, Any]) -> Path:
    """The folder that holds ``source``'s files: itself when local, else its snapshot in
    the hub cache (found through the same arguments ``from_pretrained`` had)."""
    if Path(source).is_dir():
        return Path(source)
    from transformers.utils import cached_file

    allowed = {"cache_dir", "revision", "local_files_only", "token"}
    found = cached_file(source, "config.json", **{k: v for k, v in kwargs.items() if k in allowed})
    if found is None:
        raise ModelLoadError(f"model {source!r}: its files are not in the cache")
    return Path(found).parent


def checkpoint_files(folder: Path) -> list[Path]:
    """The weight files ``from_pretrained`` would read from ``folder``: safetensors first
    (all shards of an index), else PyTorch ``.bin``."""
    for index_name, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        index = folder / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map", {})
            return [folder / name for name in sorted(set(weight_map.values()))]
        if (folder / single).is_file():
            return [folder / single]
    return []


def read_tensor_shapes(files: Sequence[Path]) -> dict[str, tuple[int, ...]]:
    """Every tensor name in the checkpoint and its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    shapes[key] = tuple(f.get_slice(key).get_shape())
        else:
            shapes.update({k: tuple(v.shape) for k, v in _torch_load(path).items()})
    return shapes


def read_tensors(files: Sequence[Path], names: Sequence[str]) -> dict[str, Any]:
    """The named tensors (torch tensors) from the checkpoint files."""
    wanted = set(names)
    found: dict[str, Any] = {}
    for path in files:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                for key in wanted & set(f.keys()):
                    found[key] = f.get_tensor(key)
        else:
            state = _torch_load(path)
            found.update({k: state[k] for k in wanted & set(state)})
    missing = wanted - set(found)
    if missing:
        raise ModelLoadError(f"checkpoint lacks {', '.join(sorted(missing))}")
    return found


def _torch_load(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # an old (non-zip) .bin cannot be memory-mapped
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path.name} is not a state dict")
    return state


@dataclass(frozen=True)
class CheckpointTensors:
    """What a checkpoint holds, by name: the shapes, and where to read the values."""

    shapes: dict[str, tuple[int, ...]]
    files: tuple[Path, ...]

    def under(self, prefix: str) -> dict[str, tuple[int, ...]]:
        """The tensors whose names start with ``prefix``, by the rest of their name."""
        return {k[len(prefix) :]: v for k, v in self.shapes.items() if k.startswith(prefix)}

    def read(self, names: Sequence[str]) -> dict[str, Any]:
        return read_tensors(self.files, names)


def checkpoint_tensors(transformers: Any, source: str, kwargs: dict[str, Any]) -> CheckpointTensors:
    files = checkpoint_files(checkpoint_dir(transformers, source, kwargs))
    return CheckpointTensors(read_tensor_shapes(files), tuple(files))
