"""The reconcile loop (placeholder until the controller issue lands)."""
