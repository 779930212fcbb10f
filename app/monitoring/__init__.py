"""Observability: Prometheus metrics (multiprocess-safe), HTTP middleware, Evidently drift."""
