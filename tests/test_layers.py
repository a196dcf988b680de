"""The layers stay visible: no module imports a layer above its own.

ontology, prompts  <  engine (core)  <  detectors  <  narrator  <  engine.app (the shell)

Every import counts: top-level, inside functions, and under `if TYPE_CHECKING:` (a lower layer
that needs a shape from above declares a Protocol instead).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ontology", "prompts", "engine", "detectors", "narrator")
RANKS = {"ontology": 0, "prompts": 0, "engine": 1, "detectors": 2, "narrator": 3, "engine.app": 4}


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to, or None for third-party and stdlib."""
    if module == "engine.app" or module.startswith("engine.app."):
        return "engine.app"
    top = module.split(".")[0]
    return top if top in RANKS else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, here: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in a module, relative imports resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + (1 if here.endswith("__init__") else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from engine import app` imports engine.app: check each imported name as a submodule too
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def upward_imports(path: Path) -> list[str]:
    here = module_name(path)
    own = layer_of(here)
    assert own is not None, here
    bad = []
    for line, name in imported_modules(ast.parse(path.read_text(), str(path)), here):
        target = layer_of(name)
        if target is not None and RANKS[target] > RANKS[own]:
            bad.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {name} ({target})")
    return bad


SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_package_is_scanned() -> None:
    assert {module_name(p).split(".")[0] for p in SOURCES} >= {"ontology", "engine", "detectors", "narrator"}
    assert any(module_name(p).startswith("engine.app.") for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_import(path: Path) -> None:
    assert upward_imports(path) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("from narrator import ask\n", ["engine/rules.py:1 (engine) imports narrator.ask (narrator)"]),
    ("from engine.app.views import feed\n", ["engine/rules.py:1 (engine) imports engine.app.views.feed (engine.app)"]),
    ("from engine import app\n", ["engine/rules.py:1 (engine) imports engine.app (engine.app)"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import detectors.view\n",
     ["engine/rules.py:3 (engine) imports detectors.view (detectors)"]),
    ("def f():\n    from detectors import registry\n", ["engine/rules.py:2 (engine) imports detectors.registry (detectors)"]),
    ("from engine import markov\nimport numpy\n", []),
], ids=["narrator", "shell-from", "shell-name", "type-only", "in-function", "allowed"])
def test_the_check_catches_upward_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                                          expected: list[str]) -> None:
    """The checker itself: a deliberately broken engine-core module is caught (and a clean one is not)."""
    fake = ROOT / "engine" / "rules.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == fake else Path.read_bytes(self).decode())
    assert upward_imports(fake) == expected
