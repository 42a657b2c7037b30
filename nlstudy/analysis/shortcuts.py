"""Which rule did a classifier of the embedded task learn? Its errors broken down by the two patches' colours.

    pair_accuracy(predictions, labels, colours)   one row per colour pair {a, b}: clips, accuracy, how often it
                                                  said "same"
    confused_pairs(frame)                         the different-colour pairs it calls "same"
    feature_rule(colours, feature)                the predictions of "same iff feature(a) == feature(b)": a
                                                  comparison of one property of the colours (one RGB channel)

A network that compares only one property of the colours (the red channel: red and yellow against green and
blue) answers every clip right except the different pairs that share it, always the same clips: its accuracy
on a fixed validation or test set is one number, whatever network reached the rule. That is why dot product
and concatenation both scored exactly 82.0 (val) / 83.8 (test) in the attention sweep: the red-channel rule on
the demo's 4-colour palette misses {red, yellow} and {green, blue}, 92 of the 512 validation clips and 83 of
the 512 test clips (tests/test_analysis_shortcuts.py recomputes both from the clips, without training).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def pair_accuracy(predictions: Sequence[int], labels: Sequence[int], colours: np.ndarray) -> pd.DataFrame:
    """One row per unordered colour pair (a <= b; a == b: a "same" clip) with `n` clips, `accuracy` (0-1) and
    `said_same` (the share predicted 1), sorted by (a, b). `colours` is `make_colours`'s (n, 2)."""
    predictions, labels, colours = np.asarray(predictions), np.asarray(labels), np.asarray(colours)
    if colours.ndim != 2 or colours.shape[1] != 2 or not len(predictions) == len(labels) == len(colours):
        raise ValueError(f"predictions {predictions.shape}, labels {labels.shape} and colours {colours.shape} must "
                         "describe the same clips (colours: (n, 2))")
    frame = pd.DataFrame({"a": colours.min(1), "b": colours.max(1), "ok": predictions == labels,
                          "same": predictions == 1})
    out = frame.groupby(["a", "b"]).agg(n=("ok", "size"), accuracy=("ok", "mean"), said_same=("same", "mean"))
    return out.reset_index()


def confused_pairs(frame: pd.DataFrame, threshold: float = 0.5) -> list[tuple[int, int]]:
    """The different-colour pairs (a < b) of a `pair_accuracy` frame called "same" more often than `threshold`."""
    different = frame[frame["a"] != frame["b"]]
    return [(int(a), int(b)) for a, b in different.loc[different["said_same"] > threshold, ["a", "b"]].to_numpy()]


def feature_rule(colours: np.ndarray, feature: Sequence[float]) -> np.ndarray:
    """(n,) int64 predictions of "same iff feature[a] == feature[b]" for `make_colours`'s (n, 2) palette indices,
    with `feature` one value per palette colour (e.g. `PALETTE[:, 0]`, the red channel)."""
    values = np.asarray(feature)[np.asarray(colours)]  # (n, 2)
    return (values[:, 0] == values[:, 1]).astype(np.int64)
