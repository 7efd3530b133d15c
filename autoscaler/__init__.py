"""The predictive autoscaler: everything that touches the outside world.

Settings, the CLI, the Prometheus source, the Kubernetes client and CRDs, the
reconcile loop, the decision store and the External Metrics API server. The pure
decision path (``policies.decision``, ``autoscaler.clock``) is also here; the
simulator imports only that part.
"""
