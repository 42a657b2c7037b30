"""benchmarks/nl_block.py on tiny inputs: its measurements and its table; the speed targets live in the benchmark."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "nl_block.py"
spec = importlib.util.spec_from_file_location("nl_block", SCRIPT)
nl_block = importlib.util.module_from_spec(spec)
sys.modules["nl_block"] = nl_block  # its dataclass looks its module up there
spec.loader.exec_module(nl_block)


def test_every_case_of_the_matrix_is_a_row():
    cases = {(c.pairwise, c.dim, c.mode, c.subsampled) for c in nl_block.CASES}
    assert len(cases) == len(nl_block.CASES) == 4 * (1 + 1 + 3) * 2  # pairwise x dim/mode x subsampling


def test_table_reports_the_measured_ratios_and_marks_the_misses():
    cases = [c for c in nl_block.CASES if c.mode == "space" and c.subsampled]  # one per pairwise
    rows = [(c, nl_block.measure(c, nl_block.QUICK_SHAPES[c.dim], reps=1)) for c in cases]
    for _, m in rows:
        assert set(m) == {"block", "explicit"}
        assert all(seconds > 0 and peak > 0 for seconds, peak in m.values())
    # each measurement also with its two sides swapped: whichever way the tiny timings fall, a row of
    # each side of 1.0 (unless they tie)
    rows += [(c, {"block": m["explicit"], "explicit": m["block"]}) for c, m in rows]
    text, missed = nl_block.table(rows)
    lines = text.splitlines()[2:]  # after the header and its rule
    assert len(lines) == len(rows)
    for line, (case, m) in zip(lines, rows):
        fields = line.split()
        assert fields[:4] == [case.pairwise, str(case.dim), case.mode, "yes"]
        time_ratio, memory_ratio = float(fields[6]), float(fields[9])
        assert abs(time_ratio - m["block"][0] / m["explicit"][0]) < 1e-3
        assert abs(memory_ratio - m["block"][1] / m["explicit"][1]) < 1e-3
        assert line.endswith("MISSED") == (m["block"][0] > m["explicit"][0])
    assert missed == sum(line.endswith("MISSED") for line in lines) > 0
    text, missed = nl_block.table(rows, verdict=False)  # --quick: no verdict
    assert missed == 0 and "MISSED" not in text
