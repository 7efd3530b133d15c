"""Kubernetes: a thin client wrapper, CRDs generated from pydantic models, the owned HPA."""
