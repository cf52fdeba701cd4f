"""Token log-likelihoods for the scoring signals: the ScoringLM protocol, transformers, an echo model (tests)."""
