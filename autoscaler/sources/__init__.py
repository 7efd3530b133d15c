"""Metric sources: where load history comes from (Prometheus and compatible APIs)."""
