"""Execute the analysis notebooks headless: `python -m nlstudy.analysis.notebooks` (what `make analysis` runs).

Each notebook in notebooks/ takes its inputs from one cell tagged `parameters` (plain assignments such
as `runs_root = "../runs/analysis"`). Executing one inserts, after that cell, a cell tagged
`injected-parameters` that sets the names the notebook declares and the caller gives (the papermill
convention), runs every cell with nbclient in the notebook's own folder, and writes the executed
notebook as HTML. Paths handed in are made relative to the notebook's folder, so neither the stored
notebooks nor their HTML hold an absolute path of this machine.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from nlstudy import files

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
PATH_PARAMETERS = ("runs_root", "runs_roots", "figures_dir")  # parameters that name files or folders
DEMO_ONLY = ("01-ablation-tables",)  # notebooks that read the demo's runs alone


def parameters_cell(nb: nbformat.NotebookNode) -> int:
    """Index of the cell tagged `parameters`; a ValueError naming the notebook when there is none."""
    for i, cell in enumerate(nb.cells):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return i
    raise ValueError(f"{nb.metadata.get('path', 'notebook')}: no cell tagged {PARAMETERS_TAG!r}")


def declared_parameters(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The names the parameters cell assigns, with their default values (literals only)."""
    tree = ast.parse(nb.cells[parameters_cell(nb)].source)
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def _relative(value: Any, folder: Path) -> Any:
    if isinstance(value, (list, tuple)):
        return [_relative(v, folder) for v in value]
    if value is None:
        return None
    return Path(os.path.relpath(Path(value).resolve(), folder.resolve())).as_posix()


def inject(nb: nbformat.NotebookNode, values: Mapping[str, Any], folder: Path) -> list[str]:
    """Insert the injected-parameters cell for the `values` the notebook declares; returns their names.
    An unknown name is a ValueError listing the declared ones (a typo must not pass silently)."""
    declared = declared_parameters(nb)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {unknown}; this notebook declares {sorted(declared)}")
    lines = ["# parameters injected by nlstudy.analysis.notebooks"]
    for name, value in values.items():
        value = _relative(value, folder) if name in PATH_PARAMETERS else value
        lines.append(f"{name} = {value!r}")
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(parameters_cell(nb) + 1, cell)
    return list(values)


def execute(notebook: str | os.PathLike, values: Mapping[str, Any] | None = None, *,
            html: str | os.PathLike | None = None, timeout: int = 900) -> nbformat.NotebookNode:
    """Run `notebook` with `values` for its parameters in its own folder; write it as HTML to `html`
    if given. Returns the executed notebook. A failing cell raises nbclient's CellExecutionError."""
    path = Path(notebook)
    nb = nbformat.read(path, as_version=4)
    inject(nb, dict(values or {}), path.parent)
    with tempfile.TemporaryDirectory() as sockets:  # local sockets, not TCP ports, and left nowhere
        kernel = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
        client = NotebookClient(nb, km=kernel, timeout=timeout, resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        finally:  # a kernel manager handed in is the caller's to stop
            if kernel.has_kernel:
                kernel.shutdown_kernel()
    if html is not None:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nb)
        Path(html).parent.mkdir(parents=True, exist_ok=True)
        files.write_text(html, body)  # whole or not at all
    return nb


def notebook_values(notebook: Path, *, demo_runs: Path, runs: Path, out: Path) -> dict[str, Any]:
    """What `make analysis` hands each notebook: the runs roots and a figures folder of its own."""
    # 01 is the demo's report (its tables and Holm family exactly as results/demo); the others read both roots
    roots = [demo_runs] if notebook.stem in DEMO_ONLY else [demo_runs, runs]
    offered = {"runs_roots": roots, "runs_root": runs, "figures_dir": out / "figures" / notebook.stem}
    declared = declared_parameters(nbformat.read(notebook, as_version=4))
    return {name: value for name, value in offered.items() if name in declared}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlstudy.analysis.notebooks",
                                     description="Execute the analysis notebooks headless and write them as HTML.")
    parser.add_argument("--notebooks", default="notebooks", help="folder of .ipynb files (default: notebooks)")
    parser.add_argument("--demo-runs", default="runs/demo", help="runs root of the demo sweeps (default: runs/demo)")
    parser.add_argument("--runs", default="runs/analysis", help="runs root of the analysis sweeps (default: runs/analysis)")
    parser.add_argument("--out", default="results/analysis", help="where the HTML and figures go")
    parser.add_argument("--only", nargs="*", default=None, help="notebook names or prefixes, e.g. 02 04")
    args = parser.parse_args(argv)
    folder, out = Path(args.notebooks), Path(args.out)
    notebooks = sorted(folder.glob("*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(p) for p in args.only)]
    if not notebooks:
        print(f"nlstudy.analysis.notebooks: error: no notebooks in {folder}"
              + (f" matching {args.only}" if args.only else ""), file=sys.stderr)
        return 2
    for root in (Path(args.demo_runs), Path(args.runs)):
        if not root.is_dir():
            print(f"nlstudy.analysis.notebooks: error: runs root {root} does not exist (run make analysis)",
                  file=sys.stderr)
            return 2
    failed = 0
    for notebook in notebooks:
        start = time.perf_counter()
        html = out / f"{notebook.stem}.html"
        try:
            execute(notebook, notebook_values(notebook, demo_runs=Path(args.demo_runs), runs=Path(args.runs), out=out),
                    html=html)
        except Exception as e:  # noqa: BLE001 - report every notebook, then fail
            failed += 1
            last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            print(f"{notebook}: FAILED after {time.perf_counter() - start:.0f} s: {last}", file=sys.stderr)
            continue
        print(f"{notebook} -> {html} ({time.perf_counter() - start:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
