"""The KEDA external scaler over gRPC, driven by a client built from externalscaler.proto.

KEDA calls GetMetricSpec once per ScaledObject, then IsActive/GetMetrics every polling
interval (or StreamIsActive for push). Absent and stale data must be errors (so KEDA
applies the ScaledObject's fallback), never a zero that would scale the workload away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from autoscaler.api.keda.generated import externalscaler_pb2 as pb
from autoscaler.api.keda.generated import externalscaler_pb2_grpc as pb_grpc
from autoscaler.api.keda.scaler import KedaServer, start_keda_server
from autoscaler.api.settings import ApiSettings
from autoscaler.certs import issue, make_ca
from autoscaler.store import DecisionStore, MetricValue
from models.errors import InputError
from tests.api.conftest import ManualClock

pytestmark = pytest.mark.integration

NAME = "autoscaler_desired_replicas"


@pytest.fixture
def env() -> Iterator[tuple[DecisionStore, ManualClock, pb_grpc.ExternalScalerStub]]:
    clock = ManualClock(1_800_000_000.0)
    store = DecisionStore()
    store.publish(
        [
            MetricValue(
                "prod", NAME, {"workload": "web", "predictiveautoscaler": "web-pa"}, 12.5, clock.t
            ),
            MetricValue(
                "prod", NAME, {"workload": "idle", "predictiveautoscaler": "idle-pa"}, 0.0, clock.t
            ),
        ]
    )
    settings = ApiSettings(
        bind="127.0.0.1:0", insecure=True, keda_bind="127.0.0.1:0", max_age_seconds=120
    )
    server = start_keda_server(store, settings, clock)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield store, clock, pb_grpc.ExternalScalerStub(channel)
    channel.close()
    server.stop(0.5)


def ref(**meta: str) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name="so", namespace="prod", scalerMetadata=meta)


def test_metric_spec_targets_one_per_replica(
    env: tuple[DecisionStore, ManualClock, pb_grpc.ExternalScalerStub],
) -> None:
    _, _, stub = env
    spec = stub.GetMetricSpec(ref(workload="web"), timeout=5)
    assert [(m.metricName, m.targetSize, m.targetSizeFloat) for m in spec.metricSpecs] == [
        (NAME, 1, 1.0)
    ]


def test_get_metrics_value(
    env: tuple[DecisionStore, ManualClock, pb_grpc.ExternalScalerStub],
) -> None:
    _, _, stub = env
    resp = stub.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=ref(workload="web"), metricName="s0-" + NAME),
        timeout=5,
    )
    (value,) = resp.metricValues
    assert (value.metricName, value.metricValueFloat, value.metricValue) == ("s0-" + NAME, 12.5, 13)
    by_selector = stub.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=ref(labelSelector="predictiveautoscaler in (web-pa)")),
        timeout=5,
    )
    assert by_selector.metricValues[0].metricValueFloat == 12.5


def test_is_active(env: tuple[DecisionStore, ManualClock, pb_grpc.ExternalScalerStub]) -> None:
    _, _, stub = env
    assert stub.IsActive(ref(workload="web"), timeout=5).result is True
    assert stub.IsActive(ref(workload="idle"), timeout=5).result is False


@pytest.mark.parametrize(
    ("meta", "code"),
    [
        ({"workload": "nope"}, grpc.StatusCode.NOT_FOUND),
        ({}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"labelSelector": "workload in (web"}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["unknown-workload", "no-metadata", "bad-selector"],
)
def test_errors_not_zero(
    env: tuple[DecisionStore, ManualClock, pb_grpc.ExternalScalerStub],
    meta: dict[str, str],
    code: grpc.StatusCode,
) -> None:
    _, _, stub = env
    for call in (
        lambda: stub.IsActive(ref(**meta), timeout=5),
        lambda: stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(**meta)), timeout=5),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code


def test_stale_is_unavailable(
    env: tuple[DecisionStore, ManualClock, pb_grpc.ExternalScalerStub],
) -> None:
    _, clock, stub = env
    clock.t += 121.0
    with pytest.raises(grpc.RpcError) as err:
        stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(workload="web")), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_stream_is_active_pushes_changes(
    env: tuple[DecisionStore, ManualClock, pb_grpc.ExternalScalerStub],
) -> None:
    store, clock, stub = env
    stream = stub.StreamIsActive(ref(workload="web"), timeout=20)
    got: list[bool] = []
    done = threading.Event()

    def consume() -> None:
        try:
            for msg in stream:
                got.append(msg.result)
                if len(got) == 2:
                    break
        finally:
            done.set()

    t = threading.Thread(target=consume)
    t.start()
    for _ in range(50):  # wait (bounded) for the first push
        if got:
            break
        done.wait(0.1)
    assert got == [True]
    store.publish(
        [
            MetricValue(
                "prod", NAME, {"workload": "web", "predictiveautoscaler": "web-pa"}, 0.0, clock.t
            )
        ]
    )
    assert done.wait(10), "no second message within 10 s"
    stream.cancel()
    t.join(5)
    assert got == [True, False]


def test_tls(tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("keda-tls")
    ca = make_ca("keda test CA")
    issue(ca, "autoscaler-api", sans=["localhost"]).write(d / "tls.crt", d / "tls.key")
    clock = ManualClock(1_800_000_000.0)
    store = DecisionStore()
    store.publish([MetricValue("prod", NAME, {"workload": "web"}, 3.0, clock.t)])
    settings = ApiSettings(
        bind="127.0.0.1:0", tls_cert=d / "tls.crt", tls_key=d / "tls.key", keda_bind="127.0.0.1:0"
    )
    server: KedaServer = start_keda_server(store, settings, clock)
    creds = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem())
    channel = grpc.secure_channel(
        f"127.0.0.1:{server.port}", creds, options=[("grpc.ssl_target_name_override", "localhost")]
    )
    try:
        stub = pb_grpc.ExternalScalerStub(channel)
        resp = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(workload="web")), timeout=5)
        assert resp.metricValues[0].metricValueFloat == 3.0
    finally:
        channel.close()
        server.stop(0.5)


def test_busy_port_is_an_error() -> None:
    clock = ManualClock(1_800_000_000.0)
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True, keda_bind="127.0.0.1:0")
    first = start_keda_server(DecisionStore(), settings, clock)
    try:
        busy = settings.model_copy(update={"keda_bind": f"127.0.0.1:{first.port}"})
        with pytest.raises(InputError, match="cannot listen"):
            start_keda_server(DecisionStore(), busy, clock)
    finally:
        first.stop(0.5)


def test_mutual_tls(tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("keda-mtls")
    ca, clients = make_ca("keda serving CA"), make_ca("keda client CA")
    issue(ca, "autoscaler-api", sans=["localhost"]).write(d / "tls.crt", d / "tls.key")
    (d / "clients.crt").write_bytes(clients.cert_pem())
    keda = issue(clients, "keda-operator", client=True)
    clock = ManualClock(1_800_000_000.0)
    store = DecisionStore()
    store.publish([MetricValue("prod", NAME, {"workload": "web"}, 3.0, clock.t)])
    settings = ApiSettings(
        bind="127.0.0.1:0",
        tls_cert=d / "tls.crt",
        tls_key=d / "tls.key",
        keda_bind="127.0.0.1:0",
        keda_client_ca=d / "clients.crt",
    )
    server = start_keda_server(store, settings, clock)
    options = [("grpc.ssl_target_name_override", "localhost")]
    request = pb.GetMetricsRequest(scaledObjectRef=ref(workload="web"))
    try:
        anonymous = grpc.secure_channel(
            f"127.0.0.1:{server.port}", grpc.ssl_channel_credentials(ca.cert_pem()), options
        )
        with pytest.raises(grpc.RpcError):
            pb_grpc.ExternalScalerStub(anonymous).GetMetrics(request, timeout=5)
        anonymous.close()
        creds = grpc.ssl_channel_credentials(ca.cert_pem(), keda.key_pem(), keda.cert_pem())
        with grpc.secure_channel(f"127.0.0.1:{server.port}", creds, options) as channel:
            resp = pb_grpc.ExternalScalerStub(channel).GetMetrics(request, timeout=5)
        assert resp.metricValues[0].metricValueFloat == 3.0
    finally:
        server.stop(0.5)


def test_64_open_streams_do_not_starve_get_metrics() -> None:
    """KEDA's push mode keeps one StreamIsActive open per ScaledObject. With 64 of them
    open (each has had its first push), GetMetrics still answers within 2 s."""
    clock = ManualClock(1_800_000_000.0)
    store = DecisionStore()
    store.publish(
        [MetricValue("prod", NAME, {"workload": f"w{i}"}, 1.0 + i, clock.t) for i in range(64)]
    )
    settings = ApiSettings(bind="127.0.0.1:0", insecure=True, keda_bind="127.0.0.1:0")
    server = start_keda_server(store, settings, clock)
    streams_channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    calls_channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    streamer = pb_grpc.ExternalScalerStub(streams_channel)
    streams = [streamer.StreamIsActive(ref(workload=f"w{i}"), timeout=60) for i in range(64)]
    first: list[bool] = []
    lock = threading.Lock()

    def first_push(stream: object) -> None:
        for msg in stream:  # type: ignore[attr-defined]
            with lock:
                first.append(msg.result)
            return

    readers = [threading.Thread(target=first_push, args=(s,), daemon=True) for s in streams]
    try:
        for t in readers:
            t.start()
        deadline = time.monotonic() + 30
        while len(first) < 64 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(first) == 64, f"only {len(first)} of 64 streams got their first push"
        stub = pb_grpc.ExternalScalerStub(calls_channel)
        latencies = []
        for i in range(20):
            start = time.monotonic()
            resp = stub.GetMetrics(
                pb.GetMetricsRequest(scaledObjectRef=ref(workload=f"w{i}")), timeout=2.0
            )
            latencies.append(time.monotonic() - start)
            assert resp.metricValues[0].metricValueFloat == 1.0 + i
        assert stub.IsActive(ref(workload="w1"), timeout=2.0).result is True
        assert max(latencies) < 2.0
        print(f"GetMetrics with 64 open streams: max {max(latencies) * 1000:.1f} ms")
    finally:
        for s in streams:
            s.cancel()
        for t in readers:
            t.join(5)
        streams_channel.close()
        calls_channel.close()
        server.stop(0.5)
