"""The layering drawn in nlstudy/__init__.py, checked on the source (every import, function-level ones
included): which package may import which, the torch-free layers import no torch, and no module
imports another in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import nlstudy

PACKAGE = Path(nlstudy.__file__).parent

CORE = {"keys", "choices", "registry", "errors", "processes", "provenance", "warm", "files", "interrupts", "records"}  # torch-free names and helpers every layer reads
ALLOWED = {  # layer -> the layers it may import (besides itself)
    **{core: CORE for core in CORE},
    "adapters": CORE,  # one module per library with its private names (adapters.torch imports torch)
    "blocks": CORE | {"adapters"},
    "models": CORE | {"blocks", "adapters"},
    "data": CORE,
    "lit": CORE | {"blocks", "models", "data", "adapters"},
    "analysis": CORE | {"blocks", "models", "data", "report", "adapters"},  # never lit or cli: a notebook needs no Trainer
    "sweep": CORE | {"adapters"},  # adapters.sweeps (no torch)
    "report": CORE | {"adapters"},  # never sweep: what the sweep planned and ran is read from its records (core records)
    "until_decided": CORE | {"sweep", "report"},  # seeds until decided: the sweep driven by the report's verdicts
    "cli": CORE | {"lit", "sweep", "report", "until_decided"},  # `nlstudy <command>` dispatch (torch imported lazily)
    "__main__": {"cli"},
    "": {"lit"},  # nlstudy/__init__.py: nlstudy.train, imported on first use
}
TORCH_FREE = CORE | {"sweep", "report", "until_decided", "cli", "__main__", ""}
TORCH = ("torch", "torchvision", "pytorch_lightning", "lightning", "torchmetrics")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(nlstudy modules imported, other top-level packages imported), anywhere in the file."""
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{a.name}" for a in node.names if is_module(f"{node.module}.{a.name}")]
            names = submodules + ([node.module] if len(submodules) < len(node.names) else [])
        else:
            continue
        for name in names:
            (ours if name.split(".")[0] == "nlstudy" else theirs).add(name if name.startswith("nlstudy") else name.split(".")[0])
    return ours, theirs


GRAPH = {}
THIRD_PARTY = {}
for file in sorted(PACKAGE.rglob("*.py")):
    GRAPH[module_name(file)], THIRD_PARTY[module_name(file)] = imports(file)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_each_layer_imports_only_the_layers_below_it():
    assert set(map(layer, GRAPH)) <= set(ALLOWED), "a new package: add it to ALLOWED and nlstudy/__init__.py"
    bad = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
                 if layer(t) != layer(m) and layer(t) not in ALLOWED[layer(m)])
    assert not bad, bad


def test_the_torch_free_layers_import_no_torch():
    bad = sorted(f"{m} imports {t}" for m, pkgs in THIRD_PARTY.items() for t in pkgs
                 if layer(m) in TORCH_FREE and t in TORCH and m != "nlstudy.cli")
    assert not bad, bad
    # nlstudy.cli reaches torch only through `nlstudy fit|validate|test|check`, inside main()
    top_level = {n.names[0].name.split(".")[0] for n in ast.parse((PACKAGE / "cli.py").read_text()).body
                 if isinstance(n, ast.Import)}
    assert not top_level & set(TORCH)


def test_no_module_imports_another_in_a_circle():
    graph = {m: {t for t in targets if t in GRAPH and t != m} for m, targets in GRAPH.items()}
    done, path, circles = set(), [], []

    def visit(module):
        path.append(module)
        for target in sorted(graph[module]):
            if target in path:
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in done:
                visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module)
    assert not circles, circles
