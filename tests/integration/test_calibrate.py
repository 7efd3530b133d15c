"""``autoscaler calibrate`` against a REAL Prometheus holding cAdvisor / kube-state-metrics.

The data is an UNSEEN workload drawn here from a fixed seed (``tests/calibsynth.py``:
daily cycle with a random phase, noise, bursts; HPA-like pods with lognormal start-up;
CPU = idle + cost x served load). One replica serves 17.3 req/s at 100 % of its
request until a release 12 h before the end makes each request cost 30 % more CPU
(13.3 after). It is written in the standard metric names (cAdvisor's per-container and
pod-level cgroup series, ``kube_pod_owner``, ``kube_replicaset_owner``, requests,
``kube_pod_created``, ``kube_pod_status_ready_time``), with a second Deployment in the
same namespace that the pod join must leave out, and with broken workloads for the
bad cases: no CPU, no Ready time, 20 minutes of data, zero load, no CPU requests.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pytest

from autoscaler.cli import main
from tests.calibsynth import Synth, synth_workload
from tests.integration.promfixture import (
    BackfillSeries,
    PrometheusServer,
    aligned_now,
    require_prometheus,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NS = "shop"
SEED = 20261205
REPO = Path(__file__).resolve().parents[2]


def _load_query(ns: str, service: str) -> str:
    return f'sum(rate(http_requests_total{{namespace="{ns}",service="{service}"}}[5m]))'


def _series(
    metric: str,
    labels: dict[str, str],
    times: np.ndarray,
    values: np.ndarray,
    kind: Literal["counter", "gauge"] = "gauge",
) -> BackfillSeries:
    index = pd.DatetimeIndex(pd.to_datetime(times, unit="s", utc=True))
    return BackfillSeries(metric, labels, pd.Series(values, index=index, dtype=float), kind)


def cluster_series(
    s: Synth,
    ns: str,
    deployment: str,
    *,
    cpu: bool = True,
    ready: bool = True,
    requests: bool = True,
) -> list[BackfillSeries]:
    """The cAdvisor and kube-state-metrics series a cluster would hold for ``s``."""
    out: list[BackfillSeries] = []
    t = s.times
    for rs, _ in s.replicasets:
        labels = {"namespace": ns, "replicaset": rs, "owner_kind": "Deployment",
                  "owner_name": deployment, "owner_is_controller": "true"}  # fmt: skip
        out.append(_series("kube_replicaset_owner", labels, t, np.ones(len(t))))
    for p in s.pod_list:
        exists = (t >= p.created) & (t < p.deleted)
        if cpu:
            alive = np.isfinite(p.cpu_seconds)
            for container in ("app", ""):  # "" = the pod-level cgroup cAdvisor also exports
                labels = {"namespace": ns, "pod": p.name, "container": container}
                out.append(
                    _series(
                        "container_cpu_usage_seconds",
                        labels,
                        t[alive],
                        p.cpu_seconds[alive],
                        "counter",
                    )  # fmt: skip
                )
        if not exists.any():
            continue
        owner = {"namespace": ns, "pod": p.name, "owner_kind": "ReplicaSet",
                 "owner_name": p.replicaset, "owner_is_controller": "true"}  # fmt: skip
        out.append(_series("kube_pod_owner", owner, t[exists], np.ones(int(exists.sum()))))
        pod = {"namespace": ns, "pod": p.name}
        out.append(
            _series("kube_pod_created", pod, t[exists], np.full(int(exists.sum()), p.created))
        )
        if requests:
            req = {**pod, "container": "app", "resource": "cpu", "unit": "core"}
            out.append(_series("kube_pod_container_resource_requests", req, t[exists],
                               np.full(int(exists.sum()), s.request_cores)))  # fmt: skip
        is_ready = exists & (t >= p.ready)
        if ready and is_ready.any():
            out.append(_series("kube_pod_status_ready_time", pod, t[is_ready],
                               np.full(int(is_ready.sum()), p.ready)))  # fmt: skip
    out.append(
        _series(
            "http_requests",
            {"namespace": ns, "service": deployment},
            t,
            s.load * s.step_s,
            "counter",
        )  # fmt: skip
    )
    return out


class Cluster:
    def __init__(self, end: int) -> None:
        self.end = end
        self.main = synth_workload(seed=SEED, end=end)
        # Another Deployment in the same namespace whose pods the join must leave out.
        self.other = synth_workload(seed=SEED + 1, end=end, days=0.5, name="worker",
                                    capacity=5.0, release_before_end_s=-1)  # fmt: skip
        short = {"days": 0.25, "release_before_end_s": -1.0}
        self.noready = synth_workload(seed=SEED + 2, end=end, name="noready", **short)
        self.nocpu = synth_workload(seed=SEED + 3, end=end, name="nocpu", **short)
        self.noreq = synth_workload(seed=SEED + 4, end=end, name="noreq", **short)
        self.idle = synth_workload(seed=SEED + 5, end=end, name="idle", base_load=0.0, **short)
        self.young = synth_workload(seed=SEED + 6, end=end, name="young", days=20 / 1440,
                                    release_before_end_s=-1)  # fmt: skip

    def backfill(self) -> list[BackfillSeries]:
        out = cluster_series(self.main, NS, "web")
        out += cluster_series(self.other, NS, "worker")
        out += cluster_series(self.noready, "edge", "noready", ready=False)
        out += cluster_series(self.nocpu, "edge", "nocpu", cpu=False)
        out += cluster_series(self.noreq, "edge", "noreq", requests=False)
        out += cluster_series(self.idle, "edge", "idle")
        out += cluster_series(self.young, "edge", "young")
        return out


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster(aligned_now(60) - 60)


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, cluster: Cluster) -> Iterator[PrometheusServer]:
    require_prometheus()
    server = PrometheusServer.start(tmp_path_factory.mktemp("calib"), backfill=cluster.backfill())
    try:
        yield server
    finally:
        server.stop()


def _args(prom: PrometheusServer, cluster: Cluster, ns: str, name: str, *extra: str) -> list[str]:
    return [
        "calibrate", "--prometheus-url", prom.url, "--namespace", ns,
        "--target", f"deployment/{name}", "--load-query", _load_query(ns, name),
        "--end", str(cluster.end), "--window", "2d", "--step", "60s", *extra,
    ]  # fmt: skip


def run_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> tuple[int, str, str]:
    """``main()`` as the console script runs it, in-process; (status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["autoscaler", *args])
    capsys.readouterr()
    code: int | str | None = 0
    try:
        main()
    except SystemExit as done:
        code = done.code
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else 1), out, err


def test_calibrate_finds_capacity_after_the_release_and_startup(
    prom: PrometheusServer, cluster: Cluster
) -> None:
    """The console script, as a user runs it: capacity now within 10 % of 13.3, start-up
    p90 within 15 % of the generated pods', and the whole-window fit misses by more."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", "from autoscaler.cli import main; main()",
         *_args(prom, cluster, NS, "web"), "--json"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    s = cluster.main
    truth = s.capacity_after
    assert truth == pytest.approx(13.3, abs=0.01)
    found = doc["capacityPerReplica"]
    err = abs(found / truth - 1)
    assert err < 0.10, doc
    lo, hi = doc["capacityInterval"]
    assert 0 < lo <= found <= hi and math.isfinite(hi)
    # Change detection is doing the work: one fit over the whole window misses by more.
    whole = doc["wholeWindow"]["capacityPerReplica"]
    whole_err = abs(whole / truth - 1)
    assert whole_err > 0.15 and whole_err > 2 * err, (whole, found)
    # The release is found within an hour, with the capacity before it near 17.3.
    [change] = doc["changePoints"]
    at = pd.Timestamp(change["at"]).timestamp()
    assert abs(at - s.release_at) <= 3600, change
    assert change["capacityBefore"] == pytest.approx(s.capacity_before, rel=0.10)
    assert doc["fit"]["start"] == change["at"]
    # Start-up: the pods of ``web`` only (not ``worker``'s), Ready by the window's end.
    p50, p90 = s.startup_truth(cluster.end)
    assert doc["startupSeconds"]["p90"] == pytest.approx(p90, rel=0.15)
    assert doc["startupSeconds"]["p50"] == pytest.approx(p50, rel=0.15)
    assert doc["startupSeconds"]["pods"] == sum(p.ready <= cluster.end for p in s.pod_list)
    assert doc["leadTimeSeconds"] == math.ceil(doc["startupSeconds"]["p90"] + 15)
    assert doc["window"]["seconds"] == 2 * 86_400
    print(
        f"\ncapacity found {found:.3f} vs truth {truth:.3f} ({err:.1%}); whole-window "
        f"{whole:.3f} ({whole_err:.1%}); p90 {doc['startupSeconds']['p90']:.1f} vs {p90:.1f}"
    )


def test_text_output_has_summary_and_snippet(
    prom: PrometheusServer, cluster: Cluster, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    code, out, err = run_main(capsys, monkeypatch, _args(prom, cluster, NS, "web"))
    assert code == 0, err
    assert "capacity per replica:" in out and "change point at" in out
    import yaml

    snippet = yaml.safe_load(out.split("(review before applying):", 1)[1])
    assert snippet["kind"] == "PredictiveAutoscaler"
    assert snippet["spec"]["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": "web"}  # fmt: skip
    assert 12 < snippet["spec"]["capacityPerReplica"] < 14.7
    assert snippet["spec"]["leadTimeSeconds"] > 15
    assert snippet["spec"]["query"] == _load_query(NS, "web")


def _one_error_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("nocpu", ["container_cpu_usage_seconds_total", "no CPU usage", "--cpu-query"]),
        ("noreq", ["kube_pod_container_resource_requests", "no CPU request", "--request-cores"]),
        ("idle", ["--load-query", "load is constant", "window with traffic"]),
        ("young", ["--window", "steps have CPU, pods and load", "widen --window"]),
        ("ghost", ["no CPU usage", "--target"]),
    ],
)
def test_capacity_cannot_be_learnt_is_one_line_exit_2(
    prom: PrometheusServer, cluster: Cluster, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, name: str, words: list[str],
) -> None:  # fmt: skip
    """No CPU series, no requests, zero load, too little data, no such Deployment:
    one line naming the series or flag and the fix; no capacity (never 0 or inf)."""
    code, out, err = run_main(capsys, monkeypatch, _args(prom, cluster, "edge", name, "--json"))
    line = _one_error_line(code, err)
    for w in words:
        assert w in line, line
    assert out == ""


def test_request_cores_flag_rescues_missing_requests(
    prom: PrometheusServer, cluster: Cluster, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    args = _args(prom, cluster, "edge", "noreq", "--json", "--request-cores", "0.5")
    code, out, err = run_main(capsys, monkeypatch, args)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["capacityPerReplica"] == pytest.approx(cluster.noreq.capacity_before, rel=0.10)


def test_missing_ready_time_warns_and_still_gives_capacity(
    prom: PrometheusServer, cluster: Cluster, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No kube_pod_status_ready_time: a clear warning, capacity still learnt, start-up
    and lead time null (never a made-up number), unless --lead-time is given."""
    code, out, err = run_main(
        capsys, monkeypatch, _args(prom, cluster, "edge", "noready", "--json")
    )
    assert code == 0, err
    assert err.count("warning: kube_pod_status_ready_time") == 1 and "--lead-time" in err
    doc = json.loads(out)
    assert doc["startupSeconds"] is None and doc["leadTimeSeconds"] is None
    assert doc["capacityPerReplica"] == pytest.approx(cluster.noready.capacity_before, rel=0.10)
    assert doc["warnings"] and "kube_pod_status_ready_time" in doc["warnings"][0]
    args = _args(prom, cluster, "edge", "noready", "--json", "--lead-time", "90s")
    code, out, err = run_main(capsys, monkeypatch, args)
    assert code == 0 and json.loads(out)["leadTimeSeconds"] == 90
    code, out, err = run_main(capsys, monkeypatch, _args(prom, cluster, "edge", "noready"))
    assert code == 0 and "leadTimeSeconds: unknown" in out


def test_bad_promql_and_unreachable_server_are_one_line(
    prom: PrometheusServer,
    cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = _args(prom, cluster, NS, "web", "--json")
    bad = [
        *args[: args.index("--load-query") + 1],
        "sum(rate(http_requests_total[5m]",
        *args[args.index("--load-query") + 2 :],
    ]
    line = _one_error_line(*run_main(capsys, monkeypatch, bad)[::2])
    assert "--prometheus-url or a query" in line and "HTTP 400" in line
    down = [a if a != prom.url else "http://127.0.0.1:9" for a in args]
    code, out, err = run_main(capsys, monkeypatch, down)
    assert code == 1 and out == "" and err.count("\n") == 1 and "cannot connect" in err
