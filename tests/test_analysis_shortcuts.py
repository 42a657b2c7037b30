"""The attention sweep's identical dot-product and concatenation scores (82.0 val / 83.8 test), explained from the
clips: the accuracy of comparing only the red channel, whichever network learns it."""

from __future__ import annotations

import numpy as np
import pytest

from nlstudy.analysis.shortcuts import confused_pairs, feature_rule, pair_accuracy
from nlstudy.data.synthetic import PALETTE, SyntheticSpec, make_clips, make_colours


def test_make_colours_gives_each_clips_patch_colours():
    spec = SyntheticSpec(task="within", distance=6, noise=0.0, distractors=0, train_samples=40)
    clips, labels = make_clips(spec, "train", 2, 16)
    colours = make_colours(spec, "train", 2, 16)
    assert colours.shape == (40, 2) and np.array_equal(colours[:, 0] == colours[:, 1], labels == 1)
    for clip, pair in zip(clips, colours):
        lit = {tuple(clip[:, t, y, x]) for t, y, x in zip(*np.nonzero(clip.max(0) > 0))}
        assert lit == {tuple(PALETTE[c]) for c in pair}


def test_the_red_channel_rule_scores_exactly_what_both_forms_scored():
    """The demo's far task, 4 colours (red, green, blue, yellow): "same iff the red channels agree" misses exactly
    {red, yellow} and {green, blue}: 82.03 % of the validation clips and 83.79 % of the test clips right, the
    numbers dot product and concatenation both published in results/analysis (attention table)."""
    spec = SyntheticSpec()  # experiments/demo.yaml's task: far, 4 colours, seed 0, 512 val / 512 test clips
    accuracy = {}
    for split in ("val", "test"):
        _, labels = make_clips(spec, split, 4, 16)
        colours = make_colours(spec, split, 4, 16)
        predictions = feature_rule(colours, PALETTE[:4, 0])
        accuracy[split] = 100 * float((predictions == labels).mean())
        frame = pair_accuracy(predictions, labels, colours)
        assert confused_pairs(frame) == [(0, 3), (1, 2)]
        assert (frame.loc[frame["a"] == frame["b"], "accuracy"] == 1.0).all()  # every "same" clip right
    assert accuracy == {"val": pytest.approx(82.03125), "test": pytest.approx(83.7890625)}
    # another one-property rule ("yellow or not") misses three pairs: a different, equally fixed score
    _, labels = make_clips(spec, "val", 4, 16)
    yellow = feature_rule(make_colours(spec, "val", 4, 16), [0, 0, 0, 1])
    assert confused_pairs(pair_accuracy(yellow, labels, make_colours(spec, "val", 4, 16))) == [(0, 1), (0, 2), (1, 2)]
    assert 100 * float((yellow == labels).mean()) == pytest.approx(74.8046875)


def test_pair_accuracy_of_hand_made_predictions():
    colours = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 1]])
    labels = np.array([1, 0, 0, 1, 0])
    predictions = np.array([1, 1, 0, 0, 0])
    frame = pair_accuracy(predictions, labels, colours)
    assert frame[["a", "b", "n"]].to_numpy().tolist() == [[0, 0, 1], [0, 1, 2], [1, 1, 1], [1, 2, 1]]
    assert frame["accuracy"].tolist() == [1.0, 0.5, 0.0, 1.0]
    assert frame["said_same"].tolist() == [1.0, 0.5, 0.0, 0.0]
    assert confused_pairs(frame) == [] and confused_pairs(frame, threshold=0.4) == [(0, 1)]
    with pytest.raises(ValueError, match="same clips"):
        pair_accuracy(predictions[:4], labels, colours)
    assert feature_rule(colours, [5, 5, 7]).tolist() == [1, 1, 1, 1, 0]
