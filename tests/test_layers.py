"""The package's layers: a module imports only from its own layer or the layers below.

errors, spec, signals < dsp (pure signal work) < store (files) < models (networks) < params, executor
< stages (the four stages and what they share) < cli, demo (doors for users)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "slapp"
LAYERS = [("errors", "spec", "signals"), ("dsp",), ("store",), ("models",), ("params", "executor"),
          ("stages",), ("cli", "demo", "__init__")]


def layer_of(module: str) -> int:
    """Layer index of ``slapp.<first>...``; the first part names the layer."""
    first = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if first in names:
            return i
    raise AssertionError(f"slapp.{first} is in no layer: add it to LAYERS in {__file__}")


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (use slapp.<layer>....)")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("slapp"):
            found += [f"{node.module}.{a.name}" if node.module == "slapp" else node.module
                      for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("slapp")]
    return found


def upward_imports(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__") or "slapp"
        here = layer_of(module)
        for target in imports_of(path):
            if layer_of(target) > here:
                bad.append(f"{module} imports {target}")
    return bad


def test_no_module_imports_a_higher_layer():
    assert upward_imports() == []


def test_an_upward_import_is_caught(tmp_path):
    pkg = tmp_path / "slapp"
    (pkg / "dsp").mkdir(parents=True)
    (pkg / "dsp" / "features.py").write_text("from slapp.stages.build.dataset import x\n")
    (pkg / "errors.py").write_text("")
    assert upward_imports(pkg) == ["slapp.dsp.features imports slapp.stages.build.dataset"]


def test_every_module_is_in_a_layer():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        layer_of(".".join(p for p in rel.parts if p != "__init__") or "slapp")
