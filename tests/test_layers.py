"""The layering of the package (README, "How the code is layered"): every import points
down, never up.

    cli, commands          the command line (argparse)
    ui                     the window (the only place Qt lives)
    config                 options -> a pipeline configuration (both of the above use it)
    runtime                sessions, analysis, timeline files
    capture, encoders,     sources, models, consent and export, the model registry
    privacy, registry,
    modelstore
    core                   messages, fusion, the row schema: depends on nothing else

Every ``import`` and ``from ... import`` in a module counts, including the lazy ones inside
functions and those under ``TYPE_CHECKING`` (an arrow is an arrow, whenever it is
followed), and so does ``importlib.import_module("emoapp....")`` with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

LOWER = ("capture", "encoders", "privacy", "registry", "modelstore")
ABOVE_RUNTIME = ("config", "ui", "commands", "cli", "__main__", "bench", "testing")

FORBIDDEN: dict[str, tuple[str, ...]] = {
    **{layer: ("runtime", "evaluation", *ABOVE_RUNTIME) for layer in LOWER},
    "runtime": ABOVE_RUNTIME,
    "evaluation": ABOVE_RUNTIME,
    "config": ("ui", "commands", "cli", "__main__", "bench", "testing"),
    "ui": ("commands", "cli", "__main__", "bench", "testing"),
}
"""For each part of the package, the parts it must not import. ``core`` may import
nothing of emoapp outside itself (checked separately)."""


def _part(module: str) -> str | None:
    """The top-level part of emoapp a dotted module name belongs to (``emoapp.ui.app`` ->
    ``ui``, ``emoapp.config`` -> ``config``); None outside emoapp or for the package's
    own ``__init__`` (which holds only the version)."""
    parts = module.split(".")
    if parts[0] != "emoapp" or len(parts) < 2 or parts[1] in ("__init__", "__version__"):
        return None
    return parts[1]


def _imported(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) for every emoapp module ``path`` imports. ``from emoapp import
    x`` counts as importing ``emoapp.x``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "emoapp":
                found += [(node.lineno, f"emoapp.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name.split(".")[0] == "emoapp"]


def upward_imports(root: Path) -> list[str]:
    """Every import in the package at ``root`` (a folder named ``emoapp``) that breaks
    the layering, as ``file:line: part imports module``."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        dotted = ".".join(rel.with_suffix("").parts)
        package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
        me = _part(dotted)
        if me is None:
            continue
        for line, module in _imported(path, package.removesuffix(".__init__")):
            target = _part(module)
            if target is None or target == me:
                continue
            if me == "core" or target in FORBIDDEN.get(me, ()):
                problems.append(f"{rel}:{line}: {me} imports {module}")
    return problems


def test_every_import_points_down():
    assert upward_imports(REPO / "emoapp") == []


def test_the_check_sees_arrows_pointing_up(tmp_path: Path):
    """The checker finds an upward import wherever it hides (a function body, a
    relative import, ``from emoapp import``, importlib), and lets downward ones be."""
    package = tmp_path / "emoapp"
    files = {
        "__init__.py": '__version__ = "0"\n',
        "core/__init__.py": "",
        "core/bad.py": "from emoapp.runtime import session\nimport numpy\n",
        "core/good.py": "from emoapp.core import bad\nfrom emoapp import __version__\n",
        "ui/__init__.py": "",
        "ui/app.py": (
            "from emoapp.config import WindowConfig\ndef run():\n    import emoapp.commands.gui\n"
        ),
        "privacy/__init__.py": "",
        "privacy/export.py": "from ..runtime.timeline import flatten_row\n",
        "runtime/__init__.py": "",
        "runtime/session.py": (
            "import importlib\nfrom emoapp import config\n"
            "importlib.import_module('emoapp.ui.app')\nfrom emoapp.capture import base\n"
        ),
        "commands/__init__.py": "",
        "commands/gui.py": "from emoapp.ui import app\nfrom emoapp.runtime import session\n",
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    assert upward_imports(package) == [
        "emoapp/core/bad.py:1: core imports emoapp.runtime",
        "emoapp/privacy/export.py:1: privacy imports emoapp.runtime.timeline",
        "emoapp/runtime/session.py:2: runtime imports emoapp.config",
        "emoapp/runtime/session.py:3: runtime imports emoapp.ui.app",
        "emoapp/ui/app.py:3: ui imports emoapp.commands.gui",
    ]
