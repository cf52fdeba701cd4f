"""Pure algorithms of the method (tag normalization, clustering, scoring, contamination): no I/O, no config."""
