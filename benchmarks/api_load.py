"""Load benchmark of the External Metrics API server (prints figures; not a test).

What it measures, all in one run on the same machine:

1. baseline: a trivial FastAPI handler (``return Response(b"ok")``) under the same uvicorn
   setup, for the machine's ceiling;
2. ours, idle: the namespaced list endpoint with 1,000 distinct series
   (``autoscaler_desired_replicas{workload=w0000..w0999}``), each request selecting one
   series by ``labelSelector`` as an HPA does, rotating over all 1,000; once with the
   response cache and once without (in production each HPA asks once per 15 s publish,
   so most requests miss the cache: the uncached figure is the realistic one);
3. ours, under reconcile: the same while a thread in the same process runs a reconcile of
   1,000 workloads (a forecaster ``update`` + ``predict`` per workload, then one
   ``publish`` of 1,000 values) every ``--reconcile-period`` seconds (the controller's
   15 s, compressed);
4. ours, paced: 5 connections, each waiting ``--pace-ms`` between requests (3 ms: at most
   ~1,400 req/s in total), under the reconcile; the baseline is paced the same way, which
   shows the machine's own wake-up latency;
5. runs 2-4 again with the server in a child process (``ServerProcess``) that mirrors the
   store, so that the reconcile never holds the server's GIL;
6. paced runs with a pure-Python CPU-bound thread in the benchmark process instead of the
   reconcile (the worst case for sharing a GIL), thread vs child process.

The configurations are interleaved over ``--rounds`` rounds and medians are printed, so
that a shared machine's changing load affects them alike.

Load comes from ``wrk`` (Debian package) in a separate process with 5 connections (the
HPA controller's five workers); latency percentiles are wrk's. Run:

    nice .venv/bin/python benchmarks/api_load.py

``make figures`` (``benchmarks/figures.py``) runs it and writes docs/benchmarks/api.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi import FastAPI
from fastapi.responses import Response
from kubernetes import client as k8s_client

from autoscaler.api.auth import Authenticator, KubeReviewer
from autoscaler.api.process import ServerProcess
from autoscaler.api.selector import parse_selector
from autoscaler.api.server import ServerThread, create_app
from autoscaler.api.settings import ApiSettings
from autoscaler.certs import self_signed
from autoscaler.clock import WallClock
from autoscaler.store import DESIRED_REPLICAS_METRIC, DecisionStore, MetricValue
from models.registry import make_forecaster

# The kube-apiserver stand-in of the API tests answers TokenReview/SAR for the TLS run.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.api.kube_standin import KubeStandIn  # noqa: E402

N_WORKLOADS = 1000
BENCH_TOKEN = "bench-token"
HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
NAMESPACE = "bench"
PATH = f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/{DESIRED_REPLICAS_METRIC}"

# wrk script: rotate over the 1,000 selectors; optional pacing; JSON summary at the end.
LUA = """
local paths = {}
local i = 0
local mode = "%(mode)s"
local pace_ms = %(pace_ms)s
init = function(args)
  for n = 0, %(n)d - 1 do
    if mode == "list" then
      paths[#paths + 1] = "%(path)s?labelSelector=workload%%3Dw" .. string.format("%%04d", n)
    else
      paths[#paths + 1] = "/x"
    end
  end
  i = math.random(#paths)
end
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], {%(auth)s["Accept"] = "application/json"})
end
if pace_ms > 0 then
  delay = function() return pace_ms end
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    '{"requests": %%d, "seconds": %%.3f, "errors": %%d, "p50_us": %%d, '
    .. '"p90_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration / 1e6, errors,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    cpu_us: float = float("nan")


def own_cpu() -> float:
    """CPU seconds of this process (all threads)."""
    return time.process_time()


def child_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    name: str, port: int, mode: str, duration: float, connections: int, pace_ms: float
) -> Result:
    """One wrk run; mode "list-auth" = list over HTTPS with a bearer token."""
    tls = mode == "list-auth"
    lua = LUA % {
        "mode": "list" if tls else mode,
        "pace_ms": pace_ms,
        "n": N_WORKLOADS,
        "path": PATH,
        "auth": f'["Authorization"] = "Bearer {BENCH_TOKEN}", ' if tls else "",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
        script = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration:g}s",
                "--timeout",
                "2s",
                "-s",
                script,
                f"{'https' if tls else 'http'}://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        )
    finally:
        os.unlink(script)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("{"))
    data = json.loads(line)
    return Result(
        name,
        data["requests"] / data["seconds"],
        data["p50_us"] / 1e3,
        data["p90_us"] / 1e3,
        data["p99_us"] / 1e3,
        data["max_us"] / 1e3,
        data["errors"],
    )


class Reconciler:
    """A reconcile-like CPU load: forecaster update+predict for every workload, then publish."""

    def __init__(self, store: DecisionStore, model: str, period: float, seed: int = 0) -> None:
        self.store = store
        self.period = period
        rng = np.random.default_rng(seed)
        step = pd.Timedelta("1min")
        self.idx = pd.date_range("2026-01-01", periods=3 * 1440, freq=step, tz="UTC")
        phase = np.arange(len(self.idx)) / 1440 * 2 * np.pi
        self.forecasters = []
        for _ in range(N_WORKLOADS):
            y = pd.Series(
                100 + 50 * np.sin(phase + rng.uniform(0, 6.28)) + rng.normal(0, 5, len(self.idx)),
                index=self.idx,
            )
            self.forecasters.append(make_forecaster(model).fit(y))
        self.next_time = self.idx[-1] + step
        self.step = step
        self.rng = rng
        self.durations: list[float] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread()

    def reconcile_once(self) -> None:
        start = time.perf_counter()
        now = time.time()
        sample_time = self.next_time
        self.next_time += self.step
        values = []
        for i, forecaster in enumerate(self.forecasters):
            forecaster.update(pd.Series([100 + self.rng.normal(0, 5)], index=[sample_time]))
            forecast = forecaster.predict(2, [0.9])
            replicas = max(1.0, float(np.ceil(forecast.quantile(0.9) / 10)))
            values.append(
                MetricValue(
                    NAMESPACE, DESIRED_REPLICAS_METRIC, {"workload": f"w{i:04d}"}, replicas, now
                )
            )
        self.store.publish(values)
        self.durations.append(time.perf_counter() - start)

    def loop(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            self.reconcile_once()
            self.stop_event.wait(max(0.0, self.period - (time.monotonic() - started)))

    def start(self) -> None:
        self.stop_event.clear()
        self.thread = threading.Thread(target=self.loop, name="reconcile", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)


class Hog:
    """Worst case of a reconcile: a thread of pure-Python work that never releases the GIL
    voluntarily (no numpy, no I/O). Shows what in-process serving costs then."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.thread = threading.Thread()

    def loop(self) -> None:
        while not self.stop_event.is_set():
            sum(range(10_000))

    def start(self) -> None:
        self.stop_event.clear()
        self.thread = threading.Thread(target=self.loop, name="hog", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)


def time_query(store: DecisionStore, repeat: int = 2000) -> tuple[float, float]:
    """Microseconds per selector query: the store's indexed query vs a full scan."""
    selector = parse_selector("workload=w0500")
    values = store.all_values()
    start = time.perf_counter()
    for _ in range(repeat):
        store.query(NAMESPACE, DESIRED_REPLICAS_METRIC, selector)
    indexed = (time.perf_counter() - start) / repeat * 1e6
    start = time.perf_counter()
    for _ in range(repeat // 10):
        [v for v in values if selector.matches(v.labels)]
    scan = (time.perf_counter() - start) / (repeat // 10) * 1e6
    return indexed, scan


def trivial_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/x")
    async def x() -> Response:
        return Response(b"ok", media_type="text/plain")

    return app


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--connections", type=int, default=5, help="concurrent clients (HPA: 5)")
    parser.add_argument("--model", default="seasonal-naive", help="forecaster for the reconcile")
    parser.add_argument("--reconcile-period", type=float, default=5.0, help="seconds (real: 15)")
    parser.add_argument("--pace-ms", type=float, default=3.0, help="per-connection delay, paced")
    parser.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True, max_age_seconds=3600)
    conns, dur, pace = args.connections, args.duration, args.pace_ms

    store = DecisionStore()
    now = time.time()
    store.publish(
        MetricValue(NAMESPACE, DESIRED_REPLICAS_METRIC, {"workload": f"w{i:04d}"}, 3.0, now)
        for i in range(N_WORKLOADS)
    )
    print(f"building {N_WORKLOADS} fitted {args.model!r} forecasters...", file=sys.stderr)
    reconciler = Reconciler(store, args.model, args.reconcile_period)
    query_us, scan_us = time_query(store)
    reconciler.reconcile_once()  # time one reconcile alone, before any load
    hog = Hog()
    alone_ms = reconciler.durations.pop() * 1e3

    # All three servers stay up; configurations are interleaved round by round so that
    # the (shared, noisy) machine's state affects them alike; medians are reported.
    base = ServerThread(trivial_app(), settings).start()
    ours = ServerThread(create_app(store, settings, clock=WallClock()), settings).start()
    uncached = ServerThread(
        create_app(store, settings, clock=WallClock(), response_cache=False), settings
    ).start()
    child = ServerProcess(store, settings).start()
    # TLS + delegated auth: bearer token -> TokenReview, SubjectAccessReview, both cached
    # for 10 s, answered by a loopback stand-in of kube-apiserver over real HTTP.
    standin = KubeStandIn(
        tokens={BENCH_TOKEN: (HPA_USER, [])},
        allowed={(HPA_USER, "list", DESIRED_REPLICAS_METRIC, NAMESPACE)},
    ).start()
    pki = Path(tempfile.mkdtemp(prefix="api-bench-"))
    self_signed("bench", ["127.0.0.1"]).write(pki / "tls.crt", pki / "tls.key")
    tls_settings = ApiSettings(
        bind="127.0.0.1:0", tls_cert=pki / "tls.crt", tls_key=pki / "tls.key", max_age_seconds=3600
    )
    review_cfg = k8s_client.Configuration()
    review_cfg.host = standin.url
    auth = Authenticator(tls_settings, KubeReviewer(k8s_client.ApiClient(review_cfg)), time.time)
    secured = ServerThread(
        create_app(store, tls_settings, auth, clock=WallClock()), tls_settings
    ).start()
    child_uncached = ServerProcess(store, settings, response_cache=False).start()
    assert child.pid is not None
    child_pid = child.pid
    configs: list[tuple[str, int, str, float, bool | str]] = [
        ("baseline: trivial FastAPI handler", base.port, "trivial", 0, False),
        (f"baseline: trivial handler, paced {pace:g} ms/conn", base.port, "trivial", pace, False),
        ("ours (thread): list, idle", ours.port, "list", 0, False),
        ("ours (thread): list, idle, response cache off", uncached.port, "list", 0, False),
        ("ours (thread): list, idle, TLS + bearer token auth", secured.port, "list-auth", 0, False),
        ("ours (thread): list, reconcile running", ours.port, "list", 0, True),
        (f"ours (thread): reconcile running, paced {pace:g} ms", ours.port, "list", pace, True),
        ("ours (child process): list, idle", child.port, "list", 0, False),
        ("ours (child process): list, reconcile running", child.port, "list", 0, True),
        (
            f"ours (child process): reconcile running, paced {pace:g} ms",
            child.port,
            "list",
            pace,
            True,
        ),
        (
            f"ours (child process): cache off, reconcile running, paced {pace:g} ms",
            child_uncached.port,
            "list",
            pace,
            True,
        ),
        (f"ours (thread): CPU hog thread, paced {pace:g} ms", ours.port, "list", pace, "hog"),
        (f"ours (child): CPU hog thread, paced {pace:g} ms", child.port, "list", pace, "hog"),
    ]
    runs: dict[str, list[Result]] = {c[0]: [] for c in configs}
    try:
        warm = (
            (base.port, "trivial"),
            (ours.port, "list"),
            (uncached.port, "list"),
            (secured.port, "list-auth"),
        )
        for port, mode in (*warm, (child.port, "list"), (child_uncached.port, "list")):
            run_wrk("warm-up", port, mode, 2, conns, 0)
        for round_no in range(args.rounds):
            print(f"round {round_no + 1}/{args.rounds}", file=sys.stderr)
            for name, port, mode, pace_ms, load in configs:
                with_reconcile = load is True
                if with_reconcile:
                    reconciler.start()
                elif load == "hog":
                    hog.start()
                # CPU per request of the serving process, for runs without the reconcile
                # (whose CPU would be mixed in): far less sensitive to a busy machine
                # than latency is.
                cpu: Callable[[], float] = (
                    (lambda: child_cpu(child_pid)) if port == child.port else own_cpu
                )
                cpu_before = cpu()
                try:
                    result = run_wrk(name, port, mode, dur, conns, pace_ms)
                finally:
                    if with_reconcile:
                        reconciler.stop()
                    elif load == "hog":
                        hog.stop()
                if not load:
                    requests = result.rps * dur
                    result.cpu_us = (cpu() - cpu_before) / max(requests, 1.0) * 1e6
                runs[name].append(result)
    finally:
        secured.stop()
        standin.stop()
        shutil.rmtree(pki, ignore_errors=True)
        child.stop()
        child_uncached.stop()
        uncached.stop()
        ours.stop()
        base.stop()

    def med(name: str, attr: str) -> float:
        return float(np.median([getattr(r, attr) for r in runs[name]]))

    base_rps = med(configs[0][0], "rps")
    print(f"\nmachine: {os.cpu_count()} cores, load average before: {load_before}")
    print(
        f"wrk -t1 -c{conns} -d{dur:g}s per run, {args.rounds} interleaved rounds, medians; "
        f"python {sys.version.split()[0]}"
    )
    durations = reconciler.durations or [float("nan")]
    print(
        f"reconcile: {N_WORKLOADS} x {args.model} update+predict + publish, every "
        f"{args.reconcile_period:g} s; alone {alone_ms:.0f} ms; under load median "
        f"{np.median(durations) * 1e3:.0f} ms, max {max(durations) * 1e3:.0f} ms "
        f"({len(reconciler.durations)} runs)"
    )
    print(
        f"store query by labelSelector at {N_WORKLOADS} series: indexed {query_us:.1f} us, "
        f"full scan {scan_us:.0f} us"
    )
    head = ("run", "req/s", "vs base", "p50 ms", "p90 ms", "p99 ms", "max ms", "err", "CPU us/req")
    print("{:56s} {:>7s} {:>7s} {:>7s} {:>7s} {:>7s} {:>7s} {:>4s} {:>10s}".format(*head))
    for name, *_ in configs:
        errors = sum(r.errors for r in runs[name])
        print(
            f"{name:56s} {med(name, 'rps'):7.0f} {med(name, 'rps') / base_rps:7.2f} "
            f"{med(name, 'p50_ms'):7.2f} {med(name, 'p90_ms'):7.2f} {med(name, 'p99_ms'):7.2f} "
            f"{med(name, 'max_ms'):7.2f} {errors:4d} {med(name, 'cpu_us'):10.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
