"""The controller's own Prometheus metrics (served on its ``/metrics``).

One ``ControllerMetrics`` object per process, built by the entry point with its own
``CollectorRegistry`` (no module-level singleton: tests build as many as they like).
The names and labels are a contract with ``deploy/`` (dashboards, alert rules):
do not rename them. Callers: ``autoscaler.controller`` (every tick),
``autoscaler.kube.leader`` (leadership), ``autoscaler run`` (exposition server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from autoscaler.controller.learning import KnobInUse

_WL = ("namespace", "workload")
#: where a capacity or lead time in use came from (``autoscaler.controller.learning``).
_SOURCES = ("spec", "learnt", "default", "none")
_ENV = ("environment",)


class ControllerMetrics:
    """Every metric the controller exports, registered in ``self.registry``."""

    #: The ``environment`` label of a workload no CostBudget covers (clamps counter).
    NO_ENVIRONMENT = "none"
    #: The quantile exported beside the risk quantile (the middle of the forecast band).
    MEDIAN = 0.5

    def __init__(self, registry: CollectorRegistry | None = None, enabled: bool = True) -> None:
        #: False where nobody scrapes (a simulation): the loop then skips observing.
        self.enabled = enabled
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        #: at the median (``quantile="0.5"``) and at the workload's risk quantile: the
        #: dashboard's forecast band is drawn between the two.
        self.forecast_load = Gauge(
            "autoscaler_forecast_load",
            "Forecast peak load over the lead time at a quantile (0.5 and the risk"
            " quantile), per second.",
            (*_WL, "quantile"),
            registry=r,
        )
        self.observed_load = Gauge(
            "autoscaler_observed_load", "Last observed load, per second.", _WL, registry=r
        )
        self.desired_replicas = Gauge(
            "autoscaler_workload_desired_replicas",
            "Replicas the forecast asks for, before min/max and the cost guard.",
            _WL,
            registry=r,
        )
        self.served_replicas = Gauge(
            "autoscaler_workload_served_replicas",
            "Replicas after every clamp (what the served metric makes the HPA run).",
            _WL,
            registry=r,
        )
        self.current_replicas = Gauge(
            "autoscaler_workload_current_replicas",
            "Replicas running when the decision was made.",
            _WL,
            registry=r,
        )
        #: ``environment``: the CostBudget covering the workload, ``NO_ENVIRONMENT``
        #: ("none") when none does (the budgets dashboard filters on it).
        self.clamps = Counter(
            "autoscaler_clamps",
            "Decisions changed by a constraint (min, max, budget, fallback).",
            (*_WL, "constraint", "environment"),
            registry=r,
        )
        self.forecast_error_ratio = Gauge(
            "autoscaler_forecast_error_ratio",
            "(observed peak - forecast) / forecast of the decision one lead time ago.",
            _WL,
            registry=r,
        )
        self.fallback_active = Gauge(
            "autoscaler_fallback_active", "1 while load data is missing.", _WL, registry=r
        )
        #: ``source``: spec (set by the user) or learnt (calibrated by the controller);
        #: absent while a capacity is neither (the workload holds its replicas).
        self.capacity_per_replica = Gauge(
            "autoscaler_capacity_per_replica",
            "Load per second one replica serves at 100 % of its CPU request, in use.",
            (*_WL, "source"),
            registry=r,
        )
        self.capacity_per_replica_low = Gauge(
            "autoscaler_capacity_per_replica_low",
            "Lower bound of a learnt capacity's interval (95 % by default).",
            (*_WL, "source"),
            registry=r,
        )
        self.capacity_per_replica_high = Gauge(
            "autoscaler_capacity_per_replica_high",
            "Upper bound of a learnt capacity's interval (95 % by default).",
            (*_WL, "source"),
            registry=r,
        )
        self.lead_time_seconds = Gauge(
            "autoscaler_lead_time_seconds",
            "Seconds from a decision to ready capacity, in use (source: spec, learnt, default).",
            (*_WL, "source"),
            registry=r,
        )
        self.budget_spend = Gauge(
            "autoscaler_budget_spend_dollars",
            "Spend this month so far (ledger).",
            _ENV,
            registry=r,
        )
        self.budget_projection = Gauge(
            "autoscaler_budget_projection_dollars",
            "Spend projected to the end of the month.",
            _ENV,
            registry=r,
        )
        self.budget_monthly_limit = Gauge(
            "autoscaler_budget_monthly_limit_dollars", "Monthly limit.", _ENV, registry=r
        )
        self.budget_hourly_cap = Gauge(
            "autoscaler_budget_hourly_cap_dollars",
            "Hourly cap in force now (from the monthly pace and the hourly limit).",
            _ENV,
            registry=r,
        )
        self.budget_hourly_cost = Gauge(
            "autoscaler_budget_hourly_cost_dollars",
            "Hourly cost of the replicas decided now.",
            _ENV,
            registry=r,
        )
        self.budget_infeasible = Gauge(
            "autoscaler_budget_infeasible",
            "1 when even minimum replicas exceed the budget.",
            _ENV,
            registry=r,
        )
        self.store_last_update = Gauge(
            "autoscaler_decision_store_last_update_timestamp_seconds",
            "Unix time the controller last published to the decision store.",
            registry=r,
        )
        self.cost_guard_unavailable = Gauge(
            "autoscaler_cost_guard_unavailable",
            "1 while an environment's cost guard cannot run (e.g. its ledger cannot be"
            " read): its workloads are held at their last allocation.",
            _ENV,
            registry=r,
        )
        self.is_leader = Gauge(
            "autoscaler_is_leader", "1 while this instance holds the leader lease.", registry=r
        )
        self.reconcile_duration = Histogram(
            "autoscaler_reconcile_duration_seconds",
            "Wall time of one reconcile (query, forecast, clamp, publish, writes).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=r,
        )

    def forget(self, namespace: str, workload: str) -> None:
        """Drop a deleted workload's series so dashboards do not show ghosts."""
        for gauge in (
            self.observed_load,
            self.desired_replicas,
            self.served_replicas,
            self.current_replicas,
            self.forecast_error_ratio,
            self.fallback_active,
        ):
            try:
                gauge.remove(namespace, workload)
            except KeyError:
                pass

        self._forget_knobs(namespace, workload)

    def _forget_knobs(self, namespace: str, workload: str) -> None:
        for gauge in (
            self.capacity_per_replica,
            self.capacity_per_replica_low,
            self.capacity_per_replica_high,
            self.lead_time_seconds,
        ):
            for source in _SOURCES:
                try:
                    gauge.remove(namespace, workload, source)
                except KeyError:
                    pass

    def export_knobs(
        self, namespace: str, workload: str, capacity: KnobInUse, lead: KnobInUse
    ) -> None:
        """The capacity and lead time in use, labelled with where they came from (called
        when they change, not every tick)."""
        self._forget_knobs(namespace, workload)
        if capacity.value is not None:
            labels = (namespace, workload, capacity.source)
            self.capacity_per_replica.labels(*labels).set(capacity.value)
            if capacity.low is not None and capacity.high is not None:
                self.capacity_per_replica_low.labels(*labels).set(capacity.low)
                self.capacity_per_replica_high.labels(*labels).set(capacity.high)
        if lead.value is not None:
            self.lead_time_seconds.labels(namespace, workload, lead.source).set(lead.value)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Start the exposition HTTP server on a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
