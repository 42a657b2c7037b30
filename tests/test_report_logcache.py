"""The report's cache of what it read out of each run's log: a hit only for the very same log, never
an error, never half an entry. (tests/test_report_faults.py checks it on real runs.)"""

import json
import os
import time

import pytest

from nlstudy.report import logcache, wandb_log
from nlstudy.report.logcache import LogCache, Stamp

CONTENTS = {"info": {"run_id": "abc"}, "config": {"table": "2a"}, "summary": {"val/top1_best": 45.25},
            "history": [{"_step": 0, "val/top1": float("nan")}], "exit_code": 0}
HOUR_NS = 3600 * 10**9


@pytest.fixture
def log(tmp_path):
    """A log file last written an hour ago."""
    path = tmp_path / "wandb" / "offline-run-20261120_100000-abc" / "run-abc.wandb"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"W&B" + b"\x00" * 100)
    old = time.time_ns() - HOUR_NS
    os.utime(path, ns=(old, old))
    return path


def put(cache, log, contents=CONTENTS):
    return cache.put(log, Stamp.of(log), contents, read_since_ns=time.time_ns())


def test_a_hit_only_for_the_same_log_size_and_time(tmp_path, log):
    cache = LogCache(tmp_path / "cache")
    assert cache.get(log, Stamp.of(log)) is None
    assert put(cache, log)
    got = cache.get(log, Stamp.of(log))
    assert json.dumps(got) == json.dumps(CONTENTS)  # NaN and all: JSON keeps what JSON gave
    stamp = Stamp.of(log)
    assert cache.get(log, stamp._replace(size=stamp.size + 1)) is None  # the log grew
    assert cache.get(log, stamp._replace(mtime_ns=stamp.mtime_ns + 1)) is None  # rewritten
    other = log.parent.parent / "offline-run-20261120_100000-abd" / "run-abc.wandb"  # a copy elsewhere
    other.parent.mkdir()
    other.write_bytes(log.read_bytes())
    os.utime(other, ns=(stamp.mtime_ns, stamp.mtime_ns))
    assert cache.get(other, Stamp.of(other)) is None


def test_nothing_cached_from_a_log_written_recently_or_during_the_read(tmp_path, log):
    cache = LogCache(tmp_path / "cache")
    stamp = Stamp.of(log)
    assert not cache.put(log, stamp, CONTENTS, read_since_ns=stamp.mtime_ns + 10**9)  # within RACY_S
    with log.open("ab") as f:  # the writer went on while it was read
        f.write(b"\x01")
    assert not cache.put(log, stamp, CONTENTS, read_since_ns=time.time_ns())
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_damaged_entries_are_misses_and_get_rewritten(tmp_path, log):
    cache = LogCache(tmp_path / "cache")
    assert put(cache, log)
    entry = cache.entry(log)
    text = entry.read_text()
    for damaged in (text[: len(text) // 2], "", "\x00garbage", "[1, 2]", json.dumps({"key": None})):
        entry.write_text(damaged)
        assert cache.get(log, Stamp.of(log)) is None
    assert put(cache, log) and cache.get(log, Stamp.of(log)) == json.loads(text)["contents"]
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporary file left behind


def test_an_entry_of_the_wrong_shape_is_not_a_log(tmp_path):
    assert wandb_log.LogContents.from_cache(CONTENTS) is not None
    for bad in (None, [], {**CONTENTS, "extra": 1}, {**CONTENTS, "history": {}}, {**CONTENTS, "exit_code": "0"},
                {**CONTENTS, "history": [1]}, {k: v for k, v in CONTENTS.items() if k != "info"}):
        assert wandb_log.LogContents.from_cache(bad) is None


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path, log):
    (tmp_path / "not-a-dir").write_text("")
    cache = LogCache(tmp_path / "not-a-dir" / "cache")
    assert not put(cache, log) and cache.get(log, Stamp.of(log)) is None


def test_where_the_cache_lives(monkeypatch, tmp_path):
    monkeypatch.setenv(logcache.CACHE_ENV, str(tmp_path / "mine"))
    assert LogCache().directory == tmp_path / "mine"
    monkeypatch.delenv(logcache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert logcache.default_dir() == tmp_path / "xdg" / "nlstudy" / "report"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert logcache.default_dir() == tmp_path / "home" / ".cache" / "nlstudy" / "report"
