"""Pipeline builders (diagnosis, treatment, baselines), coherence rules and the fast path."""
