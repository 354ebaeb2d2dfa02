"""Meta-analysis: random-effects pooling (matching metafor), its extensions, Bayesian pooling."""
