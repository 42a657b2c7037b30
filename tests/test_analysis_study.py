"""The notebooks' glue (nlstudy.analysis.study, nlstudy.analysis.evidence) on hand-built cases: patches found from pixels, grid cells,
Fig. 3 queries, the share of attention on the evidence, per-block frames, fresh and look-alike networks,
the clips of a run and the runs of a runs root."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from nlstudy import keys
from nlstudy.analysis import evidence, study
from nlstudy.analysis.attention import attention_maps, grid_to_input_box, query_dependence, query_map
from nlstudy.blocks import NonLocalBlock
from nlstudy.blocks.context import GlobalContextBlock
from nlstudy.data.synthetic import SyntheticSpec, make_clips
from nlstudy.models import build_model

SHAPE = (4, 16, 16)  # (T, H, W) of every clip here
CLEAN = SyntheticSpec(noise=0.0, distractors=0, train_samples=40, val_samples=8, test_samples=8)
TASKS = [("far", 6), ("near", 6), ("within", 8), ("within", 5), ("within", 12)]


def true_boxes(clip: np.ndarray, patch: int = 4) -> list[tuple[int, int, int, int, int]]:
    """The two patches of an embedded-task clip made with noise=0, as (t, y0, y1, x0, x1), from its pixels
    alone: coloured pixels (channels differ; grey digits and the background do not) belong to a patch;
    the first of them in (t, y, x) order is a patch's corner (no square can start above or left of it)."""
    lit = (clip.max(0) - clip.min(0)) > 0  # (T, H, W)
    found = []
    for _ in range(2):
        t, y, x = (int(v) for v in np.argwhere(lit)[0])
        assert lit[t, y : y + patch, x : x + patch].sum() == patch * patch
        found.append((t, y, y + patch, x, x + patch))
        lit[t, y : y + patch, x : x + patch] = False
    assert not lit.any()
    return sorted(found)


def hand_cells(box, grid, shape=SHAPE) -> set[tuple[int, int, int]]:
    """Cells of `grid` whose evenly split input footprint (floor(i*S/G) to floor((i+1)*S/G)) meets the box."""
    t, y0, y1, x0, x1 = box
    (gt, gh, gw), (st, sh, sw) = grid, shape

    def span(i, g, s):
        return i * s // g, (i + 1) * s // g

    return {(a, b, c) for a, b, c in itertools.product(range(gt), range(gh), range(gw))
            if span(a, gt, st)[0] <= t < span(a, gt, st)[1]
            and span(b, gh, sh)[0] < y1 and y0 < span(b, gh, sh)[1]
            and span(c, gw, sw)[0] < x1 and x0 < span(c, gw, sw)[1]}


def tiny_model(nonlocal_blocks=None, **fields):
    """C2D ResNet-18 of width 4 keeping the clip's resolution longer: res2 sees 4x8x8, res3 4x4x4."""
    return build_model(arch="c2d", depth=18, width=4, num_classes=2,
                       nonlocal_blocks={"res2": [0]} if nonlocal_blocks is None else nonlocal_blocks,
                       conv1_stride=(1, 2, 2), pool1=False, pool2=False, dropout=0.0, **fields).eval()


def randomise_blocks(model, std=0.5):
    """Give every non-local block a non-trivial attention map and a non-zero residual."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, NonLocalBlock):
                for conv in (m.theta, m.phi, m.g):
                    conv.weight.normal_(std=std)
                m.out_norm.weight.fill_(1.0)
    return model


# --- patch_boxes ---


@pytest.mark.parametrize("task,distance", TASKS)
def test_patch_boxes_are_exactly_the_two_patches_of_clean_clips(task, distance):
    clips, _ = make_clips(replace(CLEAN, task=task, distance=distance), "train", 4, 16)
    for clip in clips:
        assert evidence.patch_boxes(clip) == true_boxes(clip)
        assert evidence.patch_boxes(torch.from_numpy(clip)) == true_boxes(clip)  # a tensor works too


@pytest.mark.parametrize("task,distance", TASKS)
def test_patch_boxes_with_the_default_noise_and_distractors(task, distance):
    spec = SyntheticSpec(task=task, distance=distance, train_samples=100, val_samples=0, test_samples=0)
    noisy, _ = make_clips(spec, "train", 4, 16)
    # the noise is drawn last, from the same stream: the clip with noise=0 is the same clip before the noise
    clean, _ = make_clips(replace(spec, noise=0.0), "train", 4, 16)
    assert not np.array_equal(noisy, clean)
    for clip, before in zip(noisy, clean):
        boxes = evidence.patch_boxes(clip)
        assert len(boxes) == 2 and all((y1 - y0, x1 - x0) == (4, 4) for _, y0, y1, x0, x1 in boxes)
        assert boxes == true_boxes(before)


def test_patch_boxes_of_touching_same_colour_patches_with_an_offset():
    clip = np.zeros((3, 1, 16, 16), dtype=np.float32)
    clip[0, 0, 0:4, 1:5] = 1.0  # red at (0, 1)
    clip[0, 0, 4:8, 3:7] = 1.0  # red at (4, 3): Chebyshev distance 4 = patch, touching along a side
    assert evidence.patch_boxes(clip) == [(0, 0, 4, 1, 5), (0, 4, 8, 3, 7)]


# --- grid cells ---


def test_input_to_grid_by_hand():
    shape = (4, 16, 16)
    assert evidence.input_to_grid((0, 0, 0), shape, (4, 8, 8)) == (0, 0, 0)
    assert evidence.input_to_grid((3, 15, 15), shape, (4, 8, 8)) == (3, 7, 7)
    assert evidence.input_to_grid((2, 7, 8), shape, (4, 8, 8)) == (2, 3, 4)
    assert evidence.input_to_grid((2, 7, 8), shape, (4, 4, 4)) == (2, 1, 2)
    assert evidence.input_to_grid((1, 3, 4), shape, (4, 4, 4)) == (1, 0, 1)
    assert evidence.input_to_grid((3, 1, 14), shape, (2, 4, 4)) == (1, 0, 3)  # time subsampled by 2
    assert evidence.input_to_grid((1, 1, 14), shape, (2, 4, 4)) == (0, 0, 3)
    assert evidence.input_to_grid((2, 7, 8), (5, 3, 4, 16, 16), (4, 4, 4)) == (2, 1, 2)  # full clip shape


def test_input_to_grid_is_the_cell_whose_footprint_holds_the_position():
    # uneven splits too (a 5-pixel map over 3 cells, 16 over 3): the same split as grid_to_input_box
    for size, cells in [(16, 8), (16, 4), (16, 3), (5, 3), (7, 3), (20, 3), (9, 2)]:
        for p in range(size):
            (cell,) = evidence.input_to_grid((p,), (size,), (cells,))
            ((a, b),) = grid_to_input_box((cell,), (cells,), (size,))
            assert a <= p < b, (size, cells, p, cell)


def test_cells_covering_by_hand():
    box = (1, 4, 8, 6, 10)  # frame 1, rows 4-7, columns 6-9
    mask = evidence.cells_covering(box, (4, 8, 8), SHAPE)
    assert mask.shape == (4, 8, 8) and mask.dtype == torch.bool
    assert {tuple(map(int, p)) for p in mask.nonzero()} == {(1, h, w) for h in (2, 3) for w in (3, 4)}
    mask = evidence.cells_covering(box, (4, 4, 4), SHAPE)
    assert {tuple(map(int, p)) for p in mask.nonzero()} == {(1, 1, 1), (1, 1, 2)}
    mask = evidence.cells_covering((3, 0, 4, 12, 16), (2, 4, 4), SHAPE)  # 2 cells over 4 frames: frame 3 in cell 1
    assert {tuple(map(int, p)) for p in mask.nonzero()} == {(1, 0, 3)}
    mask = evidence.cells_covering((0, 0, 16, 0, 16), (4, 2, 2), (2, 3, 4, 16, 16))  # a whole frame, full shape
    assert {tuple(map(int, p)) for p in mask.nonzero()} == {(0, h, w) for h in (0, 1) for w in (0, 1)}


@pytest.mark.parametrize("grid", [(4, 8, 8), (4, 4, 4), (2, 4, 4), (4, 2, 2)])
def test_cells_covering_agrees_with_the_hand_count_on_real_patches(grid):
    clips, _ = make_clips(replace(CLEAN, task="far", train_samples=10), "train", 4, 16)
    for clip in clips:
        for box in true_boxes(clip):
            mask = evidence.cells_covering(box, grid, SHAPE)
            assert {tuple(map(int, p)) for p in mask.nonzero()} == hand_cells(box, grid)


# --- Fig. 3 queries ---


def test_fig3_queries_on_a_hand_built_clip():
    clip = torch.zeros(3, 4, 16, 16)
    clip[0, 1, 0:4, 0:4] = 1.0  # red, top left of frame 1
    clip[2, 1, 12:16, 12:16] = 1.0  # blue, bottom right of frame 1
    queries = evidence.fig3_queries(clip, (4, 4, 4))
    assert queries == {"patch A": (1, 0, 0), "patch B": (1, 3, 3), "background": (1, 0, 3)}  # tie: the top row
    assert evidence.fig3_queries(clip, (4, 8, 8))["patch A"] == (1, 0, 0)  # centre (1, 1) in the 2x2 cell (0, 0)
    assert evidence.fig3_queries(torch.zeros(3, 4, 16, 16), (4, 4, 4)) == {}  # no patch, no query


@pytest.mark.parametrize("task,distance", [("far", 6), ("near", 6), ("within", 8), ("within", 12)])
@pytest.mark.parametrize("grid", [(4, 8, 8), (4, 4, 4)])
def test_fig3_queries_sit_in_the_patches_and_the_background_outside_both(task, distance, grid):
    clips, _ = make_clips(replace(CLEAN, task=task, distance=distance, train_samples=30), "train", 4, 16)
    for clip in clips:
        a, b = true_boxes(clip)
        queries = evidence.fig3_queries(torch.from_numpy(clip), grid)
        assert list(queries) == ["patch A", "patch B", "background"]
        assert queries["patch A"] in hand_cells(a, grid)
        assert queries["patch B"] in hand_cells(b, grid)
        background = queries["background"]
        assert background[0] == a[0] * grid[0] // SHAPE[0]  # patch A's frame
        assert background not in hand_cells(a, grid) | hand_cells(b, grid)
        assert all(0 <= p < g for p, g in zip(background, grid))


# --- the share of attention on the evidence ---


def test_evidence_attention_equals_the_share_computed_by_hand():
    torch.manual_seed(0)
    model = randomise_blocks(tiny_model())
    clips = torch.from_numpy(make_clips(replace(CLEAN, task="far", colours=4), "val", 4, 16)[0][:5])
    broken = clips[4].clone()
    broken[:, :, :, :] = 0.0
    a, _ = true_boxes(clips[4].numpy())
    broken[:, a[0], a[1] : a[2], a[3] : a[4]] = clips[4][:, a[0], a[1] : a[2], a[3] : a[4]]  # patch B erased
    clips[4] = broken

    frame = evidence.evidence_attention(model, clips)
    assert list(frame.columns) == ["block", "clip", "direction", "share", "uniform"]
    # one block x 4 clips with both patches x 2 directions; the clip with one patch is left out
    assert len(frame) == 8 and set(frame["clip"]) == {0, 1, 2, 3}
    assert set(frame["block"]) == {"res2.nonlocal0"}

    (record,) = attention_maps(model, clips)
    assert record.query_grid == (4, 8, 8) and record.key_grid == (4, 4, 4)
    for b in range(4):
        first, second = true_boxes(clips[b].numpy())
        for direction, (src, dst) in (("A->B", (first, second)), ("B->A", (second, first))):
            t, y0, _, x0, _ = src
            query = (t, (y0 + 1) // 2, (x0 + 1) // 2)  # the patch's centre pixel (y0 + 1, x0 + 1) on the 8x8 grid
            weights = record.weights[b, (query[0] * 8 + query[1]) * 8 + query[2]].abs().reshape(4, 4, 4)
            assert torch.equal(weights, query_map(record, b, query).abs())
            target = torch.zeros(4, 4, 4, dtype=torch.bool)
            for cell in hand_cells(dst, (4, 4, 4)):
                target[cell] = True
            share = float(weights[target].sum() / weights.sum())
            (row,) = frame[(frame["clip"] == b) & (frame["direction"] == direction)].to_dict("records")
            assert row["share"] == pytest.approx(share, rel=1e-6)
            assert row["uniform"] == len(hand_cells(dst, (4, 4, 4))) / 64
            assert 0.0 < row["share"] < 1.0
    # the randomised block does not attend uniformly: the share is not the uniform one
    assert not np.allclose(frame["share"], frame["uniform"])


def test_evidence_attention_without_blocks_or_patches_is_an_empty_frame():
    clips = torch.zeros(2, 3, 4, 16, 16)
    frame = evidence.evidence_attention(tiny_model(), clips)
    assert frame.empty and list(frame.columns) == ["block", "clip", "direction", "share", "uniform"]
    assert evidence.evidence_attention(tiny_model("none"), torch.randn(2, 3, 4, 16, 16)).empty


# --- per-block and per-stage frames ---


def test_query_dependence_frame_one_row_per_block():
    torch.manual_seed(0)
    model = randomise_blocks(tiny_model({"res2": [0], "res3": [0]}))
    records = attention_maps(model, torch.randn(2, 3, 4, 16, 16))
    frame = study.query_dependence_frame(records)
    assert list(frame.columns) == ["block", "kind", "query_grid", "key_grid", "input", "output", "att",
                                   "n_queries", "sampled"]
    assert frame["block"].tolist() == ["res2.nonlocal0", "res3.nonlocal0"]
    assert frame["kind"].tolist() == ["nonlocal"] * 2
    assert frame["query_grid"].tolist() == ["4x8x8", "4x4x4"] and frame["key_grid"].tolist() == ["4x4x4", "4x2x2"]
    for row, record in zip(frame.to_dict("records"), records):
        assert row["att"] == query_dependence(record.weights).value
        assert row["input"] == query_dependence(record.inputs).value
        assert row["output"] == query_dependence(record.outputs).value
        assert (row["n_queries"], row["sampled"]) == (math.prod(record.query_grid), False)
    assert frame["att"].gt(0).all()

    sampled = study.query_dependence_frame(records, max_queries=10, seed=3)
    assert sampled["n_queries"].tolist() == [10, 10] and sampled["sampled"].all()
    assert sampled["att"].tolist() == [query_dependence(r.weights, max_queries=10, seed=3).value for r in records]
    empty = study.query_dependence_frame([])
    assert empty.empty and list(empty.columns) == list(frame.columns)


def test_erf_frame_on_hand_built_maps():
    one_hot = torch.zeros(4, 8, 8)
    one_hot[2, 3, 5] = 1.0  # the centre frame of 4 is index 2
    uniform = torch.full((4, 8, 8), 1 / 256)
    off = torch.zeros(4, 8, 8)
    off[0, 0, 0], off[2, 0, 0], off[3, :2, 0] = 0.5, 0.495, 0.0025  # frame 3 holds 0.5 %: below 1 %
    frame = study.erf_frame({"res2": one_hot, "res3": uniform, "res4": off})
    assert list(frame.columns) == ["stage", "area", "off_centre_frames", "frames"]
    rows = {r["stage"]: r for r in frame.to_dict("records")}
    assert rows["res2"]["off_centre_frames"] == 0.0 and rows["res2"]["frames"] == 1
    assert rows["res2"]["area"] == 1 / 256
    assert rows["res3"]["frames"] == 4 and rows["res3"]["area"] == 0.5
    assert rows["res3"]["off_centre_frames"] == pytest.approx(0.75)
    assert rows["res4"]["off_centre_frames"] == pytest.approx(0.505) and rows["res4"]["frames"] == 2
    assert study.erf_frame({"res2": uniform}, share=0.25)["area"].tolist() == [0.25]
    assert study.erf_frame({}).empty


# --- fresh and look-alike networks ---


def test_backbone_like_without_changes_is_the_run_freshly_built_with_identity_blocks():
    fresh = study.backbone_like(FLAT_CONFIG_BASE)
    blocks = [m for m in fresh.modules() if isinstance(m, NonLocalBlock)]
    assert len(blocks) == 1 and not fresh.training
    x = torch.randn(2, blocks[0].in_channels, 4, 4, 4)
    assert torch.equal(blocks[0](x), x)


FLAT_CONFIG_BASE = FLAT_CONFIG = {
    "model.backbone.arch": "c2d", "model.backbone.depth": 18, "model.backbone.width": 4,
    "model.backbone.num_classes": 2, "model.backbone.nonlocal_blocks": "res2",
    "model.backbone.conv1_stride": [1, 2, 2], "model.backbone.pool1": False, "model.backbone.pool2": False,
    "model.backbone.nl.pairwise": "dot_product",
    "data.frames": 4, "seed_everything": 0, "table": "2b",  # not backbone keys: ignored
}


def test_backbone_like_puts_global_context_blocks_where_the_run_has_non_local_blocks():
    same = study.backbone_like(FLAT_CONFIG)
    gc = study.backbone_like(FLAT_CONFIG, block="global_context")
    reference = build_model(arch="c2d", depth=18, width=4, num_classes=2, nonlocal_blocks="res2",
                            conv1_stride=(1, 2, 2), pool1=False, pool2=False, nl={"pairwise": "dot_product"})
    assert not same.training and not gc.training
    positions = [p for p, _ in reference.inserted_blocks()]
    assert positions and [p for p, _ in same.inserted_blocks()] == positions
    assert [p for p, _ in gc.inserted_blocks()] == positions
    assert all(isinstance(b, NonLocalBlock) and b.pairwise == "dot_product" for _, b in same.inserted_blocks())
    assert all(isinstance(b, GlobalContextBlock) for _, b in gc.inserted_blocks())
    # everything but the inserted blocks is the same network
    def shapes(model):
        return {k: v.shape for k, v in model.state_dict().items() if "nonlocal" not in k and "global_context" not in k}

    assert shapes(gc) == shapes(reference) == shapes(same)
    assert {k: v.shape for k, v in same.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    assert gc(torch.randn(1, 3, 4, 16, 16)).shape == (1, 2)


# --- the clips of a run ---


def test_clips_for_gives_the_runs_clips():
    config = {"data.dataset": "synthetic", "data.frames": 4, "data.size": 16, "data.synthetic.task": "within",
              "data.synthetic.distance": 8, "data.synthetic.train_samples": 16, "data.synthetic.val_samples": 12,
              "data.synthetic.test_samples": 12, "data.synthetic.seed": 3, "data.video.root": "",
              "model.backbone.arch": "c2d"}
    spec = SyntheticSpec(task="within", distance=8, train_samples=16, val_samples=12, test_samples=12, seed=3)
    clips, labels = study.clips_for(config, n=5)
    want_clips, want_labels = make_clips(spec, "val", 4, 16)
    assert isinstance(clips, torch.Tensor) and clips.shape == (5, 3, 4, 16, 16) and labels.dtype == torch.int64
    assert np.array_equal(clips.numpy(), want_clips[:5]) and np.array_equal(labels.numpy(), want_labels[:5])
    clips, labels = study.clips_for({k: v for k, v in config.items() if k != "data.dataset"}, "test", n=100)
    assert np.array_equal(clips.numpy(), make_clips(spec, "test", 4, 16)[0]) and len(labels) == 12


def test_clips_for_a_video_dataset_is_a_one_line_error():
    with pytest.raises(ValueError) as info:
        study.clips_for({"data.dataset": "kinetics", "data.frames": 4, "data.size": 16})
    assert "\n" not in str(info.value) and "data.dataset='kinetics'" in str(info.value)


# --- the runs of a runs root ---


def fake_run(root: Path, name: str, config: dict, *, weights: bool) -> Path:
    run_dir = root / "wandb" / name
    (run_dir / "files").mkdir(parents=True)
    (run_dir / "files" / "nlstudy_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if weights:
        (run_dir / "files" / "weights").mkdir()
        (run_dir / "files" / "weights" / "final.pt").write_bytes(b"not read")
    return run_dir


def run_config(seed, table, blocks):
    """A small nested config as a run writes it (nlstudy_config.yaml)."""
    return {"seed_everything": seed, "table": table,
            "model": {"backbone": {"nonlocal_blocks": blocks, "conv1_stride": [1, 2, 2]}}}


RUNS = [  # (directory, config, final weights saved)
    ("offline-run-20260101_000000-abc", run_config(1, "2b", "res2"), True),
    ("offline-run-20260101_000100-def", run_config(0, "2b", "res2"), False),
    ("offline-run-20260101_000200-ghi", run_config(0, "2a", "none"), True),
]


def test_runs_frame_reads_run_directories(tmp_path):
    for name, config, weights in RUNS:
        fake_run(tmp_path, name, config, weights=weights)
    (tmp_path / "wandb" / "offline-run-20260101_000300-xyz" / "files").mkdir(parents=True)  # no config: not a run
    (tmp_path / "wandb" / "latest-run").mkdir()
    frame = study.runs_frame(tmp_path)
    assert list(frame.columns[:3]) == ["run_id", "run_dir", "has_weights"]
    assert set(frame.columns) == {"run_id", "run_dir", "has_weights", keys.SEED, keys.TABLE, keys.NONLOCAL_BLOCKS,
                                  "model.backbone.conv1_stride"}
    assert sorted(frame["run_id"]) == ["abc", "def", "ghi"]
    rows = {r["run_id"]: r for r in frame.to_dict("records")}
    assert rows["abc"]["has_weights"] and not rows["def"]["has_weights"] and rows["ghi"]["has_weights"]
    assert rows["abc"]["run_dir"] == str(tmp_path / "wandb" / RUNS[0][0])
    assert rows["abc"][keys.NONLOCAL_BLOCKS] == "res2" and rows["abc"][keys.SEED] == 1
    assert rows["abc"]["model.backbone.conv1_stride"] == "[1,2,2]"  # lists as compact text
    # table first, then the config, then the seed
    assert frame["run_id"].tolist() == ["ghi", "def", "abc"]

    only = study.runs_frame(tmp_path, table="2b")
    assert only["run_id"].tolist() == ["def", "abc"] and only.index.tolist() == [0, 1]
    assert study.runs_frame(tmp_path, table="nope").empty
    # run directories directly under the root (no wandb/ folder) are found too
    assert study.runs_frame(tmp_path / "wandb")["run_id"].tolist() == ["ghi", "def", "abc"]


def test_runs_frame_files_a_run_under_each_table_it_stands_in_for(tmp_path):
    """The sweep agent reused run ghi (2a's baseline) for table 2c: the frame of 2c holds it, as the report's
    table does, and the frame of every table holds it once under each."""
    import json

    for name, config, weights in RUNS:
        fake_run(tmp_path, name, config, weights=weights)
    record = tmp_path / "sweeps" / "s2" / "runs" / "r1" / "run.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"id": "r1", "state": "finished", "config": {"table": {"value": "2c"}},
                                  "reused_from": "ghi", "wandb_id": "ghi"}))
    only = study.runs_frame(tmp_path, table="2c")
    assert only["run_id"].tolist() == ["ghi"] and only[keys.TABLE].tolist() == ["2c"]
    assert only["run_dir"].tolist() == [str(tmp_path / "wandb" / RUNS[2][0])]
    assert study.runs_frame(tmp_path, table="2a")["run_id"].tolist() == ["ghi"]
    every = study.runs_frame(tmp_path)
    assert sorted(zip(every["run_id"], every[keys.TABLE])) == [("abc", "2b"), ("def", "2b"), ("ghi", "2a"), ("ghi", "2c")]


def test_runs_frame_order_does_not_depend_on_when_the_runs_were_made(tmp_path):
    frames = []
    for order, stamps in enumerate([("000000", "000100", "000200"), ("000200", "000000", "000100")]):
        root = tmp_path / str(order)
        for (name, config, weights), stamp in zip(RUNS, stamps):
            run_id = name.rsplit("-", 1)[-1]
            fake_run(root, f"offline-run-20260101_{stamp}-{run_id}", config, weights=weights)
        frames.append(study.runs_frame(root).drop(columns="run_dir"))
    assert frames[0]["run_id"].tolist() == ["ghi", "def", "abc"]
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_runs_frame_of_a_missing_or_empty_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        study.runs_frame(tmp_path / "nowhere")
    empty = study.runs_frame(tmp_path)
    assert empty.empty and list(empty.columns) == ["run_id", "run_dir", "has_weights"]


def test_show_displays_a_figure_as_a_png_and_closes_a_pyplot_one(monkeypatch, tmp_path):
    """A figure of the object API (the report's plots) and a pyplot one are both shown as a PNG image, whatever
    the backend; the pyplot one is closed (the inline backend would show it a second time); with a folder and
    a name it is saved too."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from IPython.display import Image
    from matplotlib.figure import Figure

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    bare = Figure(figsize=(2, 1))
    bare.add_subplot().plot([0, 1])
    study.show(bare)
    made, ax = plt.subplots(figsize=(2, 1))
    study.show(made, tmp_path / "figures", "made")
    assert [type(o) for o in shown] == [Image, Image]
    assert all(o.format == "png" and o.data.startswith(b"\x89PNG") for o in shown)
    assert made.number not in plt.get_fignums()
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["made.pdf", "made.png"]


# --- a notebook on the user's own runs ------------------------------------------------------------------------


def test_runs_for_falls_back_to_every_run_where_the_table_has_none(tmp_path, capsys):
    """A run of `nlstudy fit` carries no table: a notebook pointed at its root reads it (saying so), and a root
    with no run at all is one clear error naming it."""
    fake_run(tmp_path, "offline-run-20260101_000000-own", run_config(3, None, "1-block"), weights=True)
    frame = study.runs_for(tmp_path, "attention")
    assert frame["run_id"].tolist() == ["own"]
    assert capsys.readouterr().out.strip() == f"no runs of table 'attention' under {tmp_path}: these are its 1 run(s), of any table"
    assert study.one_seed(frame, 0)["run_id"].tolist() == ["own"] and "seed 3" in capsys.readouterr().out
    assert study.with_blocks(frame)["run_id"].tolist() == ["own"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no runs under .*empty: `nlstudy fit --config experiments/demo.yaml`"):
        study.runs_for(tmp_path / "empty", "attention")


def test_what_a_notebook_needs_for_more_is_read_from_what_it_has():
    one_run = pd.DataFrame({"label": ["NL C2D 1-block"], "baseline": [False], "n": [1], "mean": [50.0],
                            "delta": [float("nan")], "data.synthetic.distance": [6]})
    needs = study.table_needs(one_run, "sweeps/demo/study/reach.yaml", axis="data.synthetic.distance")
    assert needs[0].startswith("a baseline to compare with") and "two seeds" in needs[1]
    assert needs[2] == ("runs at several values of data.synthetic.distance (these runs have "
                        "data.synthetic.distance=6 only), with and without the block")
    assert needs[3].endswith("`nlstudy sweep sweeps/demo/study/reach.yaml --runs-root <your runs root>`")
    complete = pd.DataFrame({"label": ["C2D baseline", "NL"], "baseline": [True, False], "n": [3, 3],
                             "mean": [50.0, 90.0], "delta": [0.0, 40.0], "data.synthetic.distance": [4, 12]})
    complete.attrs["settings"] = {"metric": "test/top1"}
    assert study.table_needs(complete, axis="data.synthetic.distance") == []
    assert study.baseline_lines(complete) == ["C2D baseline: test top-1 50.0 (n=3), the baseline of its group."]
    text = study.conclusion(["It says this."], ["that"])
    assert text == "It says this.\n\n**For more, this notebook needs:**\n\n- that"


def test_runs_without_a_table_make_a_generic_table_and_say_so():
    from nlstudy.report.schema import Collection
    from nlstudy.report.specs import UNTABLED, file_untabled

    runs = pd.DataFrame({"run_id": ["a", "b"], "table": [None, "2a"]})
    filed, note = file_untabled(Collection(runs, pd.DataFrame()), None)
    assert filed.runs["table"].tolist() == [UNTABLED, "2a"]
    assert note == ("1 of 2 run(s) carry no `table` key (the sweep files set it; `nlstudy fit --table=NAME` names "
                    "one): they make the generic table 'untabled'")
    kept, note = file_untabled(Collection(runs, pd.DataFrame()), ["2a"])
    assert kept.runs["table"].isna().sum() == 1 and note.endswith("they are in none of the tables asked for (--tables)")
    assert file_untabled(Collection(runs.iloc[1:], pd.DataFrame()), None)[1] == ""
