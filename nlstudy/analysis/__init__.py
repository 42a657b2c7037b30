"""Analysis of trained (or freshly built) networks, for the notebooks in notebooks/.

Plain functions on tensors and modules; no Lightning Trainer:
- `load_run(run, weights="final")`: a logged run's network (eval mode) and its resolved config;
- `attention_maps(model, clips)`: every non-local block's (B, N_query, N_key) weights on its real input,
  with the query and key grids, the block's input and output features and its context term before fusion;
- `query_dependence(att, queries=)`: GCNet's mean cosine distance between the maps (or features) of query
  pairs, by query type (`evidence_queries`); `shuffled_query_dependence(att)`: its null with the same entropy
  per query and no query dependence; `evidence_share`;
- `effective_receptive_field(model, clips, stage)` (Luo et al.: the centre unit, averaged over clips),
  `erf_squares(erf, centre)` (RepLKNet's centred squares), `theoretical_rf(model, clip_shape)` and `erf_area`
  (the smallest share of positions anywhere holding half of it);
- `rank_correlation(x, y)` (does one per-run measure predict another: Spearman's rho, interval, p),
  `analysis.shortcuts` (a classifier's errors by colour pair), `analysis.tuning` (each arm's rate);
- `analysis.measures` (the notebooks' per-run measures: where the blocks look against background queries, query
  dependence by query type, ERF squares on data and noise), `analysis.claims` (a notebook's own comparisons with
  the report's statistics), `analysis.curves` (learning curves with bootstrap intervals), `analysis.evidence`
  (where the embedded task's patches sit, and the share of attention one patch's query puts on the other).
"""

from nlstudy.analysis.attention import (
    BlockAttention,
    QueryDependence,
    allowed_keys,
    attention_maps,
    evidence_queries,
    evidence_share,
    grid_to_input_box,
    grid_to_input_map,
    query_dependence,
    query_index,
    query_map,
    shuffled_query_dependence,
    top_positions,
)
from nlstudy.analysis.receptive_field import (
    Geometry,
    Square,
    effective_receptive_field,
    erf_area,
    erf_by_stage,
    erf_square,
    erf_squares,
    noise_clips,
    temporal_spread,
    theoretical_rf,
    unit_centre,
)
from nlstudy.analysis.relation import RankCorrelation, rank_correlation
from nlstudy.analysis.runs import find_run, load_run, run_config

__all__ = [
    "BlockAttention", "Geometry", "QueryDependence", "RankCorrelation", "Square", "allowed_keys", "attention_maps",
    "effective_receptive_field", "erf_area", "erf_by_stage", "erf_square", "erf_squares", "evidence_queries",
    "evidence_share", "find_run", "grid_to_input_box", "grid_to_input_map", "load_run", "noise_clips",
    "query_dependence", "query_index", "query_map", "rank_correlation", "run_config", "shuffled_query_dependence",
    "temporal_spread", "theoretical_rf", "top_positions", "unit_centre",
]
