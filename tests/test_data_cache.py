"""nlstudy.data.cache: the embedded task's clips read back bit for bit, keyed by the generator and its arguments,
written whole or not at all, and never in a run's way."""

from __future__ import annotations

import dataclasses

import numpy as np

from nlstudy.data import ClipDataModule, cache
from nlstudy.data.synthetic import SyntheticSpec, make_clips

SPEC = SyntheticSpec(train_samples=24, val_samples=8, test_samples=8)


def test_a_cached_split_is_the_generated_one_and_is_read_back(tmp_path, monkeypatch):
    want = make_clips(SPEC, "train", 4, 16)
    first = cache.clips(SPEC, "train", 4, 16, root=tmp_path)
    files = list(tmp_path.glob("train-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*"))  # the file, and no temporary left behind

    def no_generation(*args):
        raise AssertionError("generated again")

    monkeypatch.setattr(cache, "make_clips", no_generation)
    second = cache.clips(SPEC, "train", 4, 16, root=tmp_path)
    for got in (first, second):
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        assert got[0].dtype == np.float32 and got[1].dtype == np.int64


def test_every_argument_and_the_generator_make_their_own_file(tmp_path, monkeypatch):
    base = cache.key(SPEC, "train", 4, 16)
    others = [cache.key(SPEC, "val", 4, 16), cache.key(SPEC, "train", 2, 16), cache.key(SPEC, "train", 4, 8),
              *(cache.key(dataclasses.replace(SPEC, **{field: value}), "train", 4, 16)
                for field, value in (("task", "near"), ("distance", 5), ("noise", 0.2), ("seed", 1),
                                     ("train_samples", 25), ("colours", 3)))]
    assert len({base, *others}) == len(others) + 1
    assert cache.key(SPEC, "train", 4, 16) == base  # the same arguments: the same file
    monkeypatch.setattr(cache, "generator_digest", lambda: "another generator")
    assert cache.key(SPEC, "train", 4, 16) != base


def test_an_unreadable_or_foreign_file_is_generated_again(tmp_path):
    path = tmp_path / f"val-{cache.key(SPEC, 'val', 4, 16)}.npz"
    want = make_clips(SPEC, "val", 4, 16)
    for bad in (b"not a zip file", None):
        if bad is None:  # readable, but of another shape
            np.savez(path, clips=np.zeros((8, 3, 2, 16, 16), np.float32), labels=np.zeros(8, np.int64))
        else:
            path.write_bytes(bad)
        got = cache.clips(SPEC, "val", 4, 16, root=tmp_path)
        assert np.array_equal(got[0], want[0])
        assert cache.read(path, 4, 16) is not None  # and written again, whole


def test_a_folder_that_cannot_be_written_leaves_the_run_its_clips(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # the cache folder's place is taken by a file
    got = cache.clips(SPEC, "test", 4, 16, root=blocked / "clips")
    assert np.array_equal(got[0], make_clips(SPEC, "test", 4, 16)[0])


def test_the_folder_follows_the_runs_root_and_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    monkeypatch.delenv("NLSTUDY_RUNS_DIR", raising=False)
    assert cache.folder() is None  # no runs root set (a plain `nlstudy fit`, a notebook): no cache
    monkeypatch.setenv("NLSTUDY_RUNS_DIR", str(tmp_path / "runs"))  # as the sweep agent sets it
    assert cache.folder() == tmp_path / "runs" / "cache" / "clips"
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert cache.folder() == tmp_path / "elsewhere"
    monkeypatch.setenv(cache.CACHE_ENV, cache.OFF)
    assert cache.folder() is None
    data = ClipDataModule(synthetic=SPEC)
    data.setup("fit")
    assert not (tmp_path / "runs").exists()  # off: nothing written


def test_the_data_module_reads_its_synthetic_splits_through_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    ClipDataModule(synthetic=SPEC).setup("fit")
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*.npz")) == ["train", "val"]
    again = ClipDataModule(synthetic=SPEC)
    again.setup("fit")
    clips, labels = make_clips(SPEC, "train", 4, 16)
    assert np.array_equal(again.split("train").tensors[0].numpy(), clips)
    assert np.array_equal(again.split("train").tensors[1].numpy(), labels)

