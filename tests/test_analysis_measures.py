"""The notebooks' per-run measures on hand-built cases: a block whose maps are uniform (every query the same map:
no query dependence, the evidence share of a uniform map for every query), a global-context block (one map for
all), and a C2D whose ERF cannot leave its theoretical receptive field."""

import math

import pandas as pd
import pytest
import torch

from nlstudy.analysis import measures
from nlstudy.blocks import NonLocalBlock
from nlstudy.models import build_model

CONFIG = {"data.synthetic.task": "reach", "data.synthetic.distance": 6, "data.synthetic.colours": 2,
          "data.frames": 1, "data.size": 24}


def tiny(**changes):
    torch.manual_seed(0)
    fields = dict(arch="c2d", depth=18, width=4, num_classes=2, nonlocal_blocks="res2", conv1_stride=(1, 2, 2),
                  pool1=False, pool2=False, nl={"init_std": 0.1})
    fields.update(changes)
    return build_model(**fields).eval()


def clips_and_mask(n=6):
    from nlstudy.analysis.study import clips_for

    clips, _ = clips_for(CONFIG, "val", n=n)
    return clips, measures.evidence_masks(CONFIG, n)


def uniform_block(model):
    block = next(m for m in model.modules() if isinstance(m, NonLocalBlock))
    with torch.no_grad():  # theta = 0: every logit 0, the softmax uniform over the keys
        block.theta.weight.zero_()
        block.theta.bias.zero_()
    return model


def test_evidence_masks_are_the_two_patches():
    clips, mask = clips_and_mask()
    assert mask.shape == (6, 1, 24, 24) and mask.dtype == torch.bool
    assert (mask.flatten(1).sum(1) == 2 * 16).all()  # two 4x4 patches, 6 px apart: never overlapping
    saturated = (clips.max(1).values - clips.min(1).values) > 0.5  # (n, T, H, W): the coloured pixels
    assert (saturated & mask).flatten(1).sum(1).ge(2 * 15).all()  # the patches are where the mask says (noise aside)


def test_a_uniform_map_puts_a_uniform_share_on_the_evidence_from_every_query():
    clips, mask = clips_and_mask()
    looks = measures.where_it_looks(uniform_block(tiny()), clips, mask)
    assert len(looks) == 1 and looks["clips"].iloc[0] == 6
    row = looks.iloc[0]
    assert row["evidence"] == pytest.approx(row["uniform"], rel=1e-6)
    assert row["background"] == pytest.approx(row["uniform"], rel=1e-6)
    assert 0 < row["uniform"] < 1


def test_identical_maps_have_no_query_dependence_and_a_zero_null():
    clips, mask = clips_and_mask()
    frame = measures.query_dependence_by_type(uniform_block(tiny()), clips, mask)
    assert frame["queries"].tolist() == ["evidence", "background"]
    assert frame["att"].abs().max() < 1e-9 and frame["att_null"].abs().max() < 1e-9
    # a trained-looking block (random theta): its maps depend on the query, and the measure sees it
    random = measures.query_dependence_by_type(tiny(), clips, mask)
    assert (random["att"] > 0).all() and (random["input"] > 0).all()


def test_a_global_context_block_has_one_map_and_one_context_for_every_query():
    clips, mask = clips_and_mask()
    from nlstudy.blocks.context import GlobalContextBlock

    model = tiny(block="global_context")
    block = next(m for m in model.modules() if isinstance(m, GlobalContextBlock))
    with torch.no_grad():  # its transform starts at zero (an identity block): give its context a direction
        for p in block.transform.parameters():
            p.normal_()
    frame = measures.query_dependence_by_type(model, clips, mask)
    assert set(frame["kind"]) == {"global_context"}
    assert frame["att"].abs().max() < 1e-9 and frame["context"].abs().max() < 1e-9


def test_c2d_erf_squares_grow_with_the_share_and_stay_inside_the_theoretical_rf():
    clips, _ = clips_and_mask(8)
    rows = measures.erf_rows(tiny(nonlocal_blocks="none"), clips, "res3")
    assert rows["input"].tolist() == ["data"] * 4 + ["noise"] * 4
    for _, part in rows.groupby("input"):
        assert part["share"].tolist() == [0.2, 0.3, 0.5, 0.99]
        assert part["side"].is_monotonic_increasing
        assert (part["side"] <= part["rf"] + 1).all()  # no gradient outside the theoretical RF
    assert math.isfinite(rows["rf"].iloc[0]) and (rows["clips"] == 8).all()
    # a non-local block at res2 makes the theoretical RF of later stages the whole frame
    assert measures.erf_rows(tiny(), clips, "res3", noise=False)["rf"].iloc[0] == math.inf


def test_seed_values_take_one_value_a_seed():
    frame = pd.DataFrame({"seed": [0, 0, 1, 1], "arm": ["a"] * 4, "v": [1.0, 3.0, 5.0, 7.0]})
    assert measures.seed_values(frame, "v", ["arm"])[("a",)].tolist() == [2.0, 6.0]


def test_drops_find_the_largest_fall_and_whether_it_follows_the_rate_drop():
    rows = []
    for run_id, values in (("a", [50, 70, 90, 60, 65]), ("b", [50, 60, 70, 80, 90])):
        for i, v in enumerate(values):
            rows.append({"run_id": run_id, "step": i, "epoch": None, "global_step": 64.0 * (i + 1),
                         "metric": "val/top1", "value": float(v)})
    out = measures.drops(pd.DataFrame(rows), "val/top1", at_step=256).set_index("run_id")
    assert out.loc["a", "drop"] == 30 and out.loc["a", "step"] == 256 and out.loc["a", "collapse"]
    assert out.loc["a", "at_lr_drop"]
    assert out.loc["b", "drop"] == -10 and not out.loc["b", "collapse"]
    assert not measures.drops(pd.DataFrame(rows), "val/top1", at_step=128).set_index("run_id").loc["a", "at_lr_drop"]


def test_shortcut_rows_of_the_red_channel_rule_itself():
    """A 'network' that answers with the red-channel rule agrees with it on every clip and scores its accuracy."""
    from nlstudy.data.synthetic import PALETTE, SyntheticSpec, make_colours
    from nlstudy.analysis.shortcuts import feature_rule

    config = {"data.synthetic.task": "far", "data.synthetic.colours": 4, "data.frames": 4, "data.size": 16}
    spec = SyntheticSpec(task="far", colours=4)
    rule = torch.from_numpy(feature_rule(make_colours(spec, "test", 4, 16), PALETTE[:, 0]))

    class Rule(torch.nn.Module):
        calls = 0

        def forward(self, x):
            out = torch.nn.functional.one_hot(rule[self.calls:self.calls + len(x)], 2).float()
            self.calls += len(x)
            return out

    row = measures.shortcut_rows(Rule(), config, n=128).iloc[0]
    assert row["agrees_red"] == 100.0 and row["accuracy"] == row["red_rule"] < 100.0
    assert row["clips"] == 128 and row["confused"] != "none"


def test_seed_figure_draws_every_seed_its_interval_and_the_reference():
    from nlstudy.analysis import study

    fig = study.seed_figure({"NL (res3)": {"evidence": [0.4, 0.5, 0.6], "background": [0.1, 0.2, 0.15]},
                             "one seed": {"evidence": [0.3]}}, "share", reference=0.1, reference_label="uniform map",
                            bounds=(0, 1))
    ax = fig.axes[0]
    dots = [c for c in ax.collections if len(c.get_offsets()) in (1, 3)]
    assert sum(len(c.get_offsets()) for c in dots) >= 7  # 3 + 3 + 1 seeds (and the single seed's mean)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["NL (res3) (n=3)", "one seed (n=1)"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "evidence: mean, 95 % t interval over seeds" in legend and "uniform map" in legend
    assert ax.get_xlim()[0] >= 0 and ax.get_xlim()[1] <= 1


def test_arm_label_is_the_reports_row_label():
    from nlstudy import keys
    from nlstudy.analysis import study

    row = {keys.ARCH: "c2d", keys.NONLOCAL_BLOCKS: '{"res3":[1]}', keys.BLOCK: "global_context"}
    assert study.arm_label(row) == "GC C2D 1 block (res3[1])"
    assert study.arm_label({keys.ARCH: "c2d", keys.NONLOCAL_BLOCKS: "1-block", keys.BLOCK: "nonlocal",
                            keys.PAIRWISE: "dot_product"}, pairwise=True) == "NL C2D 1-block, dot_product"
    assert study.arm_label({keys.ARCH: "c2d", keys.NONLOCAL_BLOCKS: "none"}) == "C2D baseline"


def test_place_distance_against_the_erf_squares():
    sides = {0.2: 21, 0.5: 35, 0.99: 55}
    assert measures.place_distance(6, sides) == "inside the 0.2 square"  # 10 px span
    assert measures.place_distance(17, sides) == "inside the 0.2 square"  # 21 px: exactly the side
    assert measures.place_distance(20, sides) == "inside the 0.5 square"
    assert measures.place_distance(72, sides) == "beyond the 0.99 square"


def test_seed_figure_of_values_at_a_bound_draws_them():
    """An interval clipped to the bounds (values all near 0) leaves no negative error bar."""
    from nlstudy.analysis import study

    fig = study.seed_figure({"GC": {"att": [1e-17, 0.0, 2e-17]}}, "query dependence", bounds=(0, 2))
    assert len(fig.axes[0].collections) >= 1
