"""Analysis of trained (or freshly built) networks, for the notebooks in notebooks/.

Plain functions on tensors and modules; no Lightning Trainer:
- `load_run(run, weights="final")`: a logged run's network (eval mode) and its resolved config;
- `attention_maps(model, clips)`: every non-local block's (B, N_query, N_key) weights on its real input,
  with the query and key grids and the block's input and output features;
- `query_dependence(att)`: GCNet's mean cosine distance between the maps (or features) of query pairs;
- `effective_receptive_field(model, clips, stage)` and `erf_area(erf)`: Luo et al.'s effective receptive
  field and the smallest share of input positions that holds half of it.
"""

from nlstudy.analysis.attention import (
    BlockAttention,
    QueryDependence,
    attention_maps,
    grid_to_input_box,
    grid_to_input_map,
    query_dependence,
    query_index,
    query_map,
    top_positions,
)
from nlstudy.analysis.receptive_field import effective_receptive_field, erf_area, erf_by_stage, temporal_spread
from nlstudy.analysis.runs import find_run, load_run, run_config

__all__ = [
    "BlockAttention", "QueryDependence", "attention_maps", "effective_receptive_field", "erf_area", "erf_by_stage",
    "find_run", "grid_to_input_box", "grid_to_input_map", "load_run", "query_dependence", "query_index", "query_map",
    "run_config", "temporal_spread", "top_positions",
]
