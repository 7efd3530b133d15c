"""Metric sources: where load history comes from (Prometheus and compatible APIs).

``base`` holds the ``MetricSource`` protocol and the conventions every source keeps
(NaN for missing samples, absent keys for workloads without data, ``series.attrs``);
``prometheus`` is the PromQL implementation with its named data-edge policies;
``settings`` its typed settings. The controller and ``autoscaler forecast`` use them.
"""
