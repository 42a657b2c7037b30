"""nlstudy: ablation-study runner for non-local neural networks."""
