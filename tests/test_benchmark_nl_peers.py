"""benchmarks/nl_peers.py on tiny inputs against the port it carries (timm and pytorchvideo are the bench extra's):
equal outputs with copied weights, the table, and a peer that cannot allocate its matrices."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "nl_peers.py"
spec = importlib.util.spec_from_file_location("nl_peers", SCRIPT)
nl_peers = importlib.util.module_from_spec(spec)
sys.modules["nl_peers"] = nl_peers  # its dataclass looks its module up there
spec.loader.exec_module(nl_peers)


def port_cases():
    return [c for c in nl_peers.cases("all", quick=True) if c.peer == "alexhex7"]


def test_ours_computes_what_the_port_computes_with_its_weights():
    rows = [(c, nl_peers.measure(c, reps=1)) for c in port_cases()]
    assert len(rows) == 8  # four pairwise functions, with and without subsampling
    for _, m in rows:
        assert m["gap"] < 1e-5 and m["ours"][0] > 0 and m["peer"][0] > 0
    text, _ = nl_peers.table(rows, verdict=False)
    assert len(text.splitlines()) == 2 + len(rows)


def test_a_peer_that_cannot_allocate_is_shown_as_such_and_ours_still_timed(monkeypatch):
    case = port_cases()[0]
    real = nl_peers.Port.forward

    def oom(self, x):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 80564191232 bytes")

    monkeypatch.setattr(nl_peers.Port, "forward", oom)
    m = nl_peers.measure(case, reps=1)
    assert m["peer"] is None and m["ours"][0] > 0
    text, missed = nl_peers.table([(case, m)])
    assert "OOM" in text and "cannot allocate" in text and missed == 0
    monkeypatch.setattr(nl_peers.Port, "forward", real)


def test_other_errors_of_the_peer_are_not_taken_for_memory(monkeypatch):
    monkeypatch.setattr(nl_peers.Port, "forward", lambda self, x: torch.ones(1) @ torch.ones(2))
    with pytest.raises(RuntimeError, match="^(?!.*allocate)"):  # a shape error is not taken for the peer's memory
        nl_peers.measure(port_cases()[0], reps=1)


def test_the_ports_concatenation_refuses_what_would_not_fit_before_allocating(monkeypatch):
    case = next(c for c in port_cases() if c.form == "concatenation")
    monkeypatch.setattr(nl_peers, "available_bytes", lambda: 1024)  # less than its (B, 2C', N, N') pairs
    m = nl_peers.measure(case, reps=1)
    assert m["peer"] is None and m["ours"][0] > 0
