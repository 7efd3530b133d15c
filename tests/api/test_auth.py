"""Check 15 and the aggregated-API-server security model, with certificates made here.

Serving TLS, front-proxy client certificates (right CA and CN, wrong CN, rogue CA),
X-Remote-* headers trusted only behind such a certificate, bearer tokens through a
TokenReview, authorisation through a SubjectAccessReview (cached briefly), 401/403 with
Status bodies. TokenReview/SAR go over real HTTP, through the official kubernetes client,
to a loopback stand-in of kube-apiserver (kube_standin.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from kubernetes import client

from autoscaler.api.auth import Authenticator, KubeReviewer
from autoscaler.api.server import ServerThread, create_app
from autoscaler.api.settings import ApiSettings
from autoscaler.certs import issue, make_ca
from tests.api.conftest import BASE, Kubectl, ManualClock, raw_call, section4_store
from tests.api.kube_standin import KubeStandIn

pytestmark = pytest.mark.integration

HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
LIST = f"{BASE}/namespaces/default/queue_depth"


@dataclass
class Pki:
    dir: Path
    serving_ca: Path
    proxy_ca: Path
    proxy: tuple[Path, Path]
    wrong_cn: tuple[Path, Path]
    rogue: tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    serving_ca = make_ca("test serving CA")
    serving = issue(serving_ca, "autoscaler-api", sans=["127.0.0.1", "localhost"])
    proxy_ca = make_ca("front-proxy-ca")
    rogue_ca = make_ca("front-proxy-ca")  # same name, different key: must not be trusted

    def write(name: str, pair: object) -> tuple[Path, Path]:
        cert, key = d / f"{name}.crt", d / f"{name}.key"
        pair.write(cert, key)  # type: ignore[attr-defined]
        return cert, key

    write("serving", serving)
    (d / "serving-ca.crt").write_bytes(serving_ca.cert_pem())
    (d / "proxy-ca.crt").write_bytes(proxy_ca.cert_pem())
    return Pki(
        dir=d,
        serving_ca=d / "serving-ca.crt",
        proxy_ca=d / "proxy-ca.crt",
        proxy=write("proxy", issue(proxy_ca, "front-proxy-client", client=True)),
        wrong_cn=write("wrong-cn", issue(proxy_ca, "intruder", client=True)),
        rogue=write("rogue", issue(rogue_ca, "front-proxy-client", client=True)),
    )


@pytest.fixture(scope="module")
def standin() -> Iterator[KubeStandIn]:
    s = KubeStandIn(
        tokens={
            "bob-token": ("bob", ["devs"]),
            "carol-token": ("carol", ["system:authenticated"]),
            "hpa-token": (HPA, ["system:serviceaccounts"]),
        },
        allowed={
            (HPA, "list", "queue_depth", "default"),
            ("bob", "list", "queue_depth", "default"),
            ("bob", "get", BASE, ""),
        },
    ).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def auth_clock() -> ManualClock:
    return ManualClock(0.0)


@pytest.fixture(scope="module")
def server(
    pki: Pki, standin: KubeStandIn, clock: ManualClock, auth_clock: ManualClock
) -> Iterator[ServerThread]:
    settings = ApiSettings(
        bind="127.0.0.1:0",
        tls_cert=pki.dir / "serving.crt",
        tls_key=pki.dir / "serving.key",
        requestheader_client_ca=pki.proxy_ca,
        requestheader_allowed_names=["front-proxy-client"],
        auth_cache_seconds=10.0,
    )
    cfg = client.Configuration()
    cfg.host = standin.url
    reviewer = KubeReviewer(client.ApiClient(cfg))
    auth = Authenticator(settings, reviewer, auth_clock.now)
    app = create_app(section4_store(clock.now()), settings, auth, clock)
    with ServerThread(app, settings) as srv:
        yield srv


def kube_client(
    server: ServerThread, pki: Pki, cert: tuple[Path, Path] | None = None, token: str | None = None
) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = f"https://127.0.0.1:{server.port}"
    cfg.ssl_ca_cert = str(pki.serving_ca)  # the serving certificate is verified, not skipped
    if cert is not None:
        cfg.cert_file, cfg.key_file = str(cert[0]), str(cert[1])
    if token is not None:
        cfg.api_key = {"BearerToken": token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
    cfg.retries = urllib3.Retry(total=0)
    return client.ApiClient(cfg)


def status_of(body: bytes) -> dict[str, object]:
    status = json.loads(body)
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert status["status"] == "Failure"
    return status  # type: ignore[no-any-return]


def proxy_headers(user: str, group: str | None = None) -> dict[str, str]:
    headers = {"X-Remote-User": user}
    if group is not None:
        headers["X-Remote-Group"] = group
    return headers


def test_no_credentials_401(server: ServerThread, pki: Pki) -> None:
    code, ctype, body = raw_call(kube_client(server, pki), LIST)
    assert code == 401 and ctype == "application/json"
    assert status_of(body)["reason"] == "Unauthorized"


def test_wrong_cn_401_via_kubectl(server: ServerThread, pki: Pki) -> None:
    # (Without any credentials kubectl answers a 401 by prompting for a password, so it
    # is given a client certificate whose CN is not an allowed requestheader name.)
    out = Kubectl(
        f"https://127.0.0.1:{server.port}",
        (
            "--certificate-authority",
            str(pki.serving_ca),
            "--client-certificate",
            str(pki.wrong_cn[0]),
            "--client-key",
            str(pki.wrong_cn[1]),
        ),
    ).raw(LIST)
    assert out.returncode != 0 and "You must be logged in to the server" in out.stderr  # 401


def test_aggregator_probe_as_system_masters(server: ServerThread, pki: Pki) -> None:
    """Check 1 as the aggregator sends it: front-proxy cert, system:kube-aggregator, masters."""
    api = kube_client(server, pki, cert=pki.proxy)
    headers = proxy_headers("system:kube-aggregator", "system:masters")
    code, ctype, body = raw_call(api, BASE, headers=headers)
    assert code == 200 and ctype == "application/json"
    assert json.loads(body)["kind"] == "APIResourceList"


def test_hpa_through_front_proxy_allowed(
    server: ServerThread, pki: Pki, standin: KubeStandIn
) -> None:
    api = kube_client(server, pki, cert=pki.proxy)
    code, _, body = raw_call(api, LIST, headers=proxy_headers(HPA, "system:serviceaccounts"))
    assert code == 200
    assert sorted(i["value"] for i in json.loads(body)["items"]) == ["1500m", "2k"]
    review = next(r for r in standin.access_reviews if r["spec"]["user"] == HPA)
    assert review["spec"]["resourceAttributes"] == {
        "verb": "list",
        "group": "external.metrics.k8s.io",
        "version": "v1beta1",
        "resource": "queue_depth",
        "namespace": "default",
    }


def test_extra_headers_reach_the_review(
    server: ServerThread, pki: Pki, standin: KubeStandIn
) -> None:
    api = kube_client(server, pki, cert=pki.proxy)
    headers = {
        **proxy_headers("dave"),
        "X-Remote-Extra-Scopes": "metrics",
        "X-Remote-Extra-A%2Fb": "1",
    }
    assert raw_call(api, LIST, headers=headers)[0] == 403
    review = standin.access_reviews[-1]["spec"]
    assert review["user"] == "dave"
    assert review["extra"] == {"a/b": ["1"], "scopes": ["metrics"]}


def test_denied_user_403(server: ServerThread, pki: Pki) -> None:
    api = kube_client(server, pki, cert=pki.proxy)
    code, _, body = raw_call(api, LIST, headers=proxy_headers("mallory"))
    assert code == 403
    status = status_of(body)
    assert status["reason"] == "Forbidden" and status["code"] == 403
    assert "mallory" in str(status["message"]) and "queue_depth" in str(status["message"])


def test_group_header_is_not_comma_split(server: ServerThread, pki: Pki) -> None:
    """ "a,system:masters" is one (odd) group name, as kube-apiserver reads it: no bypass."""
    api = kube_client(server, pki, cert=pki.proxy)
    code, _, _ = raw_call(api, LIST, headers=proxy_headers("erin", "devs,system:masters"))
    assert code == 403


def test_wrong_cn_401(server: ServerThread, pki: Pki) -> None:
    api = kube_client(server, pki, cert=pki.wrong_cn)
    code, _, body = raw_call(api, LIST, headers=proxy_headers("system:admin", "system:masters"))
    assert code == 401
    assert "intruder" in str(status_of(body)["message"])


def test_rogue_ca_rejected(server: ServerThread, pki: Pki) -> None:
    """A certificate from another CA never reaches the app: the TLS handshake fails.

    (Python's ssl cannot hand an unverified peer certificate to the app, so this is a TLS
    alert rather than kube-apiserver's 401; either way the request is refused.)
    """
    api = kube_client(server, pki, cert=pki.rogue)
    with pytest.raises(urllib3.exceptions.HTTPError):
        raw_call(api, LIST, headers=proxy_headers("system:admin", "system:masters"))


def test_remote_headers_ignored_without_front_proxy_cert(
    server: ServerThread, pki: Pki, standin: KubeStandIn
) -> None:
    api = kube_client(server, pki, token="carol-token")
    code, _, body = raw_call(api, LIST, headers=proxy_headers("system:admin", "system:masters"))
    assert code == 403  # carol (from the token) was asked about, not the claimed admin
    assert "carol" in str(status_of(body)["message"])
    assert standin.access_reviews[-1]["spec"]["user"] == "carol"


def test_bearer_token_via_kubectl(server: ServerThread, pki: Pki) -> None:
    kubectl = Kubectl(
        f"https://127.0.0.1:{server.port}",
        ("--certificate-authority", str(pki.serving_ca), "--token", "bob-token"),
    )
    out = kubectl.raw(f"{LIST}?labelSelector=queue%3Dorders")
    assert out.returncode == 0, out.stderr
    assert [i["value"] for i in json.loads(out.stdout)["items"]] == ["1500m"]
    out = kubectl.raw(BASE)
    assert out.returncode == 0 and "queue_depth" in out.stdout
    out = kubectl.raw(f"{BASE}/namespaces/kube-system/queue_depth")
    assert out.returncode != 0 and "Forbidden" in out.stderr


def test_invalid_token_401(server: ServerThread, pki: Pki) -> None:
    code, _, body = raw_call(kube_client(server, pki, token="not-a-token"), LIST)
    assert code == 401 and status_of(body)["reason"] == "Unauthorized"


def test_reviews_cached_briefly(
    server: ServerThread, pki: Pki, standin: KubeStandIn, auth_clock: ManualClock
) -> None:
    api = kube_client(server, pki, token="hpa-token")
    auth_clock.t += 100.0  # start with nothing cached
    tokens, access = len(standin.token_reviews), len(standin.access_reviews)
    for _ in range(3):
        assert raw_call(api, LIST)[0] == 200
    assert len(standin.token_reviews) == tokens + 1
    assert len(standin.access_reviews) == access + 1
    auth_clock.t += 11.0  # past auth_cache_seconds
    assert raw_call(api, LIST)[0] == 200
    assert len(standin.token_reviews) == tokens + 2
    assert len(standin.access_reviews) == access + 2


def test_review_failure_fails_closed(
    server: ServerThread, pki: Pki, standin: KubeStandIn, auth_clock: ManualClock
) -> None:
    auth_clock.t += 100.0
    standin.fail = True
    try:
        code, _, body = raw_call(kube_client(server, pki, token="bob-token"), LIST)
    finally:
        standin.fail = False
    assert code == 401 and status_of(body)["reason"] == "Unauthorized"
    # The failure was not cached: the next request succeeds.
    assert raw_call(kube_client(server, pki, token="bob-token"), LIST)[0] == 200


@pytest.mark.parametrize("path", ["/openapi/v2", "/openapi/v3"])
def test_openapi_404_with_auth(server: ServerThread, pki: Pki, path: str) -> None:
    api = kube_client(server, pki, cert=pki.proxy)
    code, _, body = raw_call(
        api, path, headers=proxy_headers("system:kube-aggregator", "system:masters")
    )
    assert code == 404 and status_of(body)["reason"] == "NotFound"


def test_health_needs_no_credentials(server: ServerThread, pki: Pki) -> None:
    code, _, body = raw_call(kube_client(server, pki), "/healthz", accept="*/*")
    assert code == 200 and body == b"ok"


def test_metrics_needs_the_same_auth(server: ServerThread, pki: Pki, standin: KubeStandIn) -> None:
    """``/metrics`` on the serving port is not public: 401 anonymous, 403 without RBAC."""
    code, _, body = raw_call(kube_client(server, pki), "/metrics", accept="*/*")
    assert code == 401 and status_of(body)["reason"] == "Unauthorized"
    code, _, body = raw_call(kube_client(server, pki, token="carol-token"), "/metrics", "*/*")
    assert code == 403 and status_of(body)["reason"] == "Forbidden"
    api = kube_client(server, pki, cert=pki.proxy)
    headers = proxy_headers("system:kube-aggregator", "system:masters")
    code, _, body = raw_call(api, "/metrics", accept="*/*", headers=headers)
    assert code == 200 and b"autoscaler_api_request_duration_seconds" in body


@pytest.fixture(scope="module")
def hanging() -> Iterator[KubeStandIn]:
    """A kube-apiserver whose TokenReview/SAR connection accepts and never answers."""
    s = KubeStandIn(
        tokens={"bob-token": ("bob", ["devs"])},
        allowed={("bob", "list", "queue_depth", "default")},
        hang=True,
        hang_seconds=30.0,
    ).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def hang_server(pki: Pki, hanging: KubeStandIn, clock: ManualClock) -> Iterator[ServerThread]:
    settings = ApiSettings(
        bind="127.0.0.1:0",
        tls_cert=pki.dir / "serving.crt",
        tls_key=pki.dir / "serving.key",
        requestheader_client_ca=pki.proxy_ca,
        requestheader_allowed_names=["front-proxy-client"],
        review_timeout_seconds=0.5,
        review_workers=2,
    )
    cfg = client.Configuration()
    cfg.host = hanging.url
    cfg.retries = urllib3.Retry(total=0)
    reviewer = KubeReviewer(client.ApiClient(cfg), timeout=settings.review_timeout_seconds)
    auth = Authenticator(settings, reviewer, ManualClock(0.0).now)
    app = create_app(section4_store(clock.now()), settings, auth, clock)
    with ServerThread(app, settings) as srv:
        yield srv


def test_hung_token_review_answers_503_fast(hang_server: ServerThread, pki: Pki) -> None:
    start = time.monotonic()
    code, _, body = raw_call(kube_client(hang_server, pki, token="bob-token"), LIST)
    elapsed = time.monotonic() - start
    assert code == 503 and status_of(body)["reason"] == "ServiceUnavailable", body
    assert elapsed < 2.0, f"took {elapsed:.2f}s with a hung TokenReview"


def test_hung_access_review_answers_503_fast(hang_server: ServerThread, pki: Pki) -> None:
    api = kube_client(hang_server, pki, cert=pki.proxy)
    start = time.monotonic()
    code, _, body = raw_call(api, LIST, headers=proxy_headers(HPA, "system:serviceaccounts"))
    elapsed = time.monotonic() - start
    assert code == 503 and status_of(body)["reason"] == "ServiceUnavailable", body
    assert elapsed < 2.0, f"took {elapsed:.2f}s with a hung SubjectAccessReview"


def test_hung_reviewer_many_callers_never_hang(hang_server: ServerThread, pki: Pki) -> None:
    """24 uncached requests at once (distinct tokens) against 2 review threads: each gets a
    401/403/503 within 3 s, and health stays fast meanwhile."""

    def one(i: int) -> tuple[int, float]:
        start = time.monotonic()
        code, _, _ = raw_call(kube_client(hang_server, pki, token=f"token-{i}"), LIST)
        return code, time.monotonic() - start

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(one, range(24)))
        start = time.monotonic()
        health = raw_call(kube_client(hang_server, pki), "/healthz", accept="*/*")[0]
        health_seconds = time.monotonic() - start
    assert {code for code, _ in results} <= {401, 403, 503}, results
    assert max(seconds for _, seconds in results) < 3.0, results
    assert health == 200 and health_seconds < 1.0
