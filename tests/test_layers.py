"""The layering of the package (docs/guide/architecture.md): every import points down,
never up, and parts on the same level leave each other alone.

    testing                test support (runs the CLI in a guarded child)
    __main__, cli          the command line entry points
    commands               the subcommands (argparse)
    bench                  benchmarks (they drive the window, the session, batch)
    ui                     the window (the only place Qt lives)
    config                 options -> a pipeline configuration (both of the above use it)
    batch                  many recordings, local pool or Ray
    reports                readable reports (the call report)
    live | calls           the live session | a recorded call by speaker
    recorded | stream |    one recorded file -> a timeline | the local WebSocket stream |
      evaluation             scoring models on datasets
    capture, encoders,     sources, models, consent and export, the model registry
    privacy, registry,     (these may import each other)
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

LEVELS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("capture", "encoders", "privacy", "registry", "modelstore"),
    ("recorded", "stream", "evaluation"),
    ("live", "calls"),
    ("reports",),
    ("batch",),
    ("config",),
    ("ui",),
    ("bench",),
    ("commands",),
    ("cli",),
    ("__main__",),
    ("testing",),
)
"""The parts of the package from the bottom up. A part may import the parts on lower
levels; on its own level only the bottom layer's parts may import each other."""

SHARED_LEVEL = LEVELS[1]


def _level(part: str) -> int | None:
    for i, level in enumerate(LEVELS):
        if part in level:
            return i
    return None


def _forbidden(me: str, target: str) -> bool:
    """Whether part ``me`` may not import part ``target``. A part the levels do not
    name (a new top-level module) is forbidden to import and be imported until it is
    placed."""
    mine, theirs = _level(me), _level(target)
    if mine is None or theirs is None:
        return True
    if mine == theirs:
        return me not in SHARED_LEVEL
    return theirs > mine


def _part(module: str) -> str | None:
    """The top-level part of emoapp a dotted module name belongs to (``emoapp.ui.app`` ->
    ``ui``, ``emoapp.config`` -> ``config``); None outside emoapp or for the package's
    own ``__init__`` (which holds only the version)."""
    parts = module.split(".")
    if parts[0] != "emoapp" or len(parts) < 2 or parts[1] in ("__init__", "__version__"):
        return None
    return parts[1]


def _imported(path: Path, package: str, submodules: bool = False) -> list[tuple[int, str]]:
    """(line, module) for every emoapp module ``path`` imports. ``from emoapp import
    x`` counts as importing ``emoapp.x``; with ``submodules``, ``from emoapp.a import b``
    counts as importing both ``emoapp.a`` and ``emoapp.a.b`` (which may be a module)."""
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
            if base == "emoapp" or submodules:
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            if base != "emoapp":
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
            if _forbidden(me, target):
                problems.append(f"{rel}:{line}: {me} imports {module}")
    return problems


def test_every_import_points_down():
    assert upward_imports(REPO / "emoapp") == []


def test_the_check_sees_arrows_pointing_up(tmp_path: Path):
    """The checker finds an upward or sideways import wherever it hides (a function
    body, a relative import, ``from emoapp import``, importlib), and lets downward ones
    be."""
    package = tmp_path / "emoapp"
    files = {
        "__init__.py": '__version__ = "0"\n',
        "core/__init__.py": "",
        "core/bad.py": "from emoapp.live import session\nimport numpy\n",
        "core/good.py": "from emoapp.core import bad\nfrom emoapp import __version__\n",
        "ui/__init__.py": "",
        "ui/app.py": (
            "from emoapp.config import WindowConfig\ndef run():\n    import emoapp.commands.gui\n"
        ),
        "privacy/__init__.py": "",
        "privacy/export.py": (
            "from ..recorded.timeline import flatten_row\nfrom emoapp import registry\n"
        ),
        "live/__init__.py": "",
        "live/session.py": (
            "import importlib\nfrom emoapp import config\n"
            "importlib.import_module('emoapp.ui.app')\nfrom emoapp.capture import base\n"
            "from emoapp.calls import analysis\nfrom emoapp.recorded import timeline\n"
        ),
        "commands/__init__.py": "",
        "commands/gui.py": "from emoapp.ui import app\nfrom emoapp.live import session\n",
        "newpart/__init__.py": "from emoapp.core import bad\n",
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    assert sorted(upward_imports(package)) == [
        "emoapp/core/bad.py:1: core imports emoapp.live",
        "emoapp/live/session.py:2: live imports emoapp.config",
        "emoapp/live/session.py:3: live imports emoapp.ui.app",
        "emoapp/live/session.py:5: live imports emoapp.calls",
        "emoapp/newpart/__init__.py:1: newpart imports emoapp.core",
        "emoapp/privacy/export.py:1: privacy imports emoapp.recorded.timeline",
        "emoapp/ui/app.py:3: ui imports emoapp.commands.gui",
    ]


def import_circles(root: Path) -> list[list[str]]:
    """Groups of modules of the package at ``root`` that import each other, directly or
    through others (every import counts, lazy ones too): each a circle to open."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        dotted = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
        graph.setdefault(dotted, set())
        for _, module in _imported(path, package, submodules=True):
            graph[dotted].add(module)
    # An import of a package or a name in it (``from emoapp.core import fusion``) points
    # at the module when there is one.
    for node, targets in graph.items():
        graph[node] = {t for t in targets if t in graph and t != node}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(circles)


def test_no_import_circles():
    assert import_circles(REPO / "emoapp") == []


def test_the_circle_check_finds_a_circle(tmp_path: Path):
    package = tmp_path / "emoapp"
    files = {
        "__init__.py": "",
        "a/__init__.py": "",
        "a/one.py": "from emoapp.a import two\n",
        "a/two.py": "def f():\n    from emoapp.a.three import x\n",
        "a/three.py": "import emoapp.a.one\n",
        "a/four.py": "from emoapp.a import one\n",
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    assert import_circles(package) == [["emoapp.a.one", "emoapp.a.three", "emoapp.a.two"]]
