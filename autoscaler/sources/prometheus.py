"""``PrometheusSource``: load history from any PromQL HTTP API, with named edge policies.

Who calls it: the controller (one batched ``history_by`` per environment per tick, and
``backfill`` once at start-up) and ``autoscaler forecast``. It speaks the plain
``/api/v1/query_range`` API through ``prometheus-api-client``, so it works against
Prometheus, Thanos Query, Grafana Mimir and VictoriaMetrics alike.

Query conventions: load is a rate, so counters go through ``rate()`` (which also
handles counter resets: a restarted pod's counter dropping to 0 is not a dip in
load); ``history_by`` wraps the query in ``sum by (namespace, workload) (...)`` so one
request returns every workload, together with ``count by`` of the same query (see
PARTIAL_SERIES). Long ranges are paged: at most ``max_points`` steps
per series (the server's limit) and at most ``max_samples_per_request`` samples per
request (the client's memory: decoding JSON costs ~230 bytes per sample at peak). The
page size adapts to the number of series seen so far, so a tick (a few steps) is one
request and a 14-day backfill of 1,000 workloads is ~21 bounded ones.

Data-edge policies (each has a test; see docs/prometheus.md):

==================  =====================================================================
EMPTY_RESULT        no series: ``history`` returns an all-NaN series on the grid,
                    ``history_by`` has no key for it. Never zeros.
GAPS                steps without a sample are NaN (never zero-filled, never held).
NON_FINITE          NaN, +Inf and -Inf samples become NaN (missing); counted in
                    ``attrs["non_finite"]``.
NEGATIVE            negative samples become NaN (load cannot be negative); counted in
                    ``attrs["negative"]``.
MULTIPLE_SERIES     ``history`` got several series: ``PermanentError`` naming their
                    labels (default), or ``sum``/``max`` them (settings).
STALE               the newest finite sample is older than ``stale_after_seconds``
                    before ``end``: ``attrs["stale"] = True``; the data is kept and
                    the trailing steps stay NaN (the controller treats it as missing).
COUNTER_RESET       a bare counter (``*_total``, ``*_count``, ``*_sum``, ``*_bucket``
                    outside ``rate()``/``increase()``/...) is refused with
                    ``InputError`` (default) or logged (``counter_check``).
QUERY_ERROR         4xx (bad PromQL, bad auth, wrong path): ``PermanentError`` with the
                    server's own error text and a fix.
SERVER_ERROR        5xx, 429, connection refused: ``RetryableError``.
TIMEOUT             no complete answer within ``timeout_seconds``: a deadline for the
                    whole request (connect, headers and body), not a per-read
                    timeout, so a drip-fed answer cannot hold a tick: ``RetryableError``.
TOO_LARGE           an answer over ``max_response_bytes`` (default 64 MiB, counted
                    while reading, after gzip): refused unread, ``RetryableError``.
PARTIAL_SERIES      fewer input series behind a sum (pods no longer scraped) look like
                    less load: ``history_by`` reports the count per step in
                    ``attrs["series_count"]`` (one request: ``counted_sum``); the
                    caller decides (the controller treats a drop as missing data).
PARTIAL             a 200 answer with ``warnings`` (Thanos partial response, a store
                    down): ``RetryableError`` by default, or accepted and logged.
NOT_JSON            an HTML page or invalid JSON instead of the API's JSON: with a 5xx
                    (a proxy in trouble) ``RetryableError``, otherwise
                    ``PermanentError`` (the URL is not a PromQL API).
==================  =====================================================================
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests  # type: ignore[import-untyped,unused-ignore]
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter  # type: ignore[import-untyped,unused-ignore]
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import InsecureRequestWarning
from urllib3.util.retry import Retry

from autoscaler.sources.base import DEFAULT_BY, TimeLike
from autoscaler.sources.settings import PrometheusSettings
from models.errors import InputError, PermanentError, RetryableError

log = logging.getLogger(__name__)

Key = tuple[str, ...]

#: Label that marks the count series in ``history_by``'s answer (see ``counted_sum``);
#: reserved-looking (``__...__``) so that no real metric carries it.
AGG_LABEL = "__autoscaler_agg__"
AGG_COUNT = "count"
AutoscalerErrorType = RetryableError | PermanentError


# --------------------------------------------------------------------------- counter check

#: Functions under which a counter is used correctly (they look at increments, or
#: only at presence/counts of series, never at the raw value).
_COUNTER_SAFE = (
    "rate",
    "irate",
    "increase",
    "resets",
    "changes",
    "count",
    "count_over_time",
    "absent",
    "absent_over_time",
    "present_over_time",
    "timestamp",
    "group",
)
_COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_SAFE_CALL = re.compile(r"\b(" + "|".join(_COUNTER_SAFE) + r")\s*\(")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def bare_counters(query: str) -> list[str]:
    """Counter-like metric names used outside ``rate()`` & co. (a heuristic).

    Names are judged by the Prometheus naming convention (``_total``, ``_count``,
    ``_sum``, ``_bucket``); a gauge named against the convention is not caught, and
    ``counter_check: off`` silences a false alarm.
    """
    text = _STRING.sub('""', query)
    text = _BRACES.sub("", text)
    text = _LABEL_LIST.sub("", text)
    # Remove each counter-safe call with its balanced argument list.
    while (m := _SAFE_CALL.search(text)) is not None:
        depth, i = 0, m.end() - 1
        for i in range(m.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
        text = text[: m.start()] + " " + text[i + 1 :]
    found = []
    for m in _IDENT.finditer(text):
        name = m.group(0)
        follows = text[m.end() :].lstrip()[:1]
        if name.endswith(_COUNTER_SUFFIXES) and follows != "(" and name not in found:
            found.append(name)
    return found


# --------------------------------------------------------------------------- helpers


def to_unix(t: TimeLike, where: str = "time") -> float:
    """Unix seconds of a TimeLike; naive datetimes are refused (ambiguous zone)."""
    if isinstance(t, datetime):  # pd.Timestamp is a datetime too
        if t.tzinfo is None:
            raise InputError(where, f"{t} has no timezone", "pass an aware UTC datetime")
        return t.timestamp()
    value = float(t)
    if not math.isfinite(value):
        raise InputError(where, f"{t!r} is not a finite time", "pass unix seconds")
    return value


def grid(start: float, end: float, step: int) -> np.ndarray:
    """Multiples of ``step`` in [start, end] (unix seconds, int64).

    Aligning to multiples of the step makes consecutive ticks and pages ask for the
    same instants, so their answers line up exactly.
    """
    first = math.ceil(start / step) * step
    last = math.floor(end / step) * step
    if last < first:
        return np.empty(0, dtype=np.int64)
    return np.arange(first, last + step, step, dtype=np.int64)


#: Series count assumed for a query not seen before, to size its first page.
ASSUMED_SERIES = 1000


def page_points(series: int, max_points: int, max_samples: int) -> int:
    """Steps per page for ``series`` series: within both limits, at least one."""
    return max(1, min(max_points, max_samples // max(series, 1)))


def _title(html: str) -> str:
    m = re.search(r"<title[^>]*>(.*?)</title>", html, re.I | re.S)
    return " ".join(m.group(1).split())[:120] if m else ""


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return " ".join(text.split())


# --------------------------------------------------------------------------- the source


class PrometheusSource:
    """A ``MetricSource`` over a PromQL HTTP API (Prometheus, Thanos, Mimir, VM)."""

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        #: HTTP requests sent so far (a query per page); tests and metrics read it.
        self.requests_sent = 0
        self._local = threading.local()
        self._warned: set[str] = set()
        #: series each query returned last time (sizes the first page of the next call).
        self._series_seen: dict[str, int] = {}
        self._client = self._connect(settings)

    # -- construction ------------------------------------------------------------------

    def _connect(self, s: PrometheusSettings) -> PrometheusConnect:
        session = requests.Session()
        tls = s.tls
        if tls.insecure_skip_verify:
            session.verify = False
            # Said once here, by us, instead of urllib3's warning on every request.
            host = urlsplit(s.url).hostname or ""
            warnings.filterwarnings(
                "ignore",
                message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'",
                category=InsecureRequestWarning,
            )
            log.warning(
                "TLS certificates of %s are not verified (prometheus.tls.insecure_skip_verify);"
                " set prometheus.tls.ca_file instead outside a test setup",
                s.url,
            )
        elif tls.ca_file is not None:
            if not tls.ca_file.is_file():
                raise InputError("prometheus.tls.ca_file", f"{tls.ca_file} is not a file", "")
            session.verify = str(tls.ca_file)
        if (tls.cert_file is None) != (tls.key_file is None):
            raise InputError(
                "prometheus.tls", "cert_file and key_file go together", "set both or neither"
            )
        if tls.cert_file is not None and tls.key_file is not None:
            session.cert = (str(tls.cert_file), str(tls.key_file))
        session.hooks["response"].append(self._remember)
        session.hooks["response"].append(self._read_body)
        auth = None
        if s.basic_auth is not None:
            auth = (s.basic_auth.username, s.basic_auth.resolve_password())
        # Retries: connection failures only. HTTP statuses and read timeouts surface at
        # once; the controller's next tick is the retry (a 15-s budget must hold).
        retry = Retry(total=None, connect=s.retries, read=False, status=0, other=0, redirect=5)
        client = PrometheusConnect(
            url=s.url,
            headers=s.auth_headers(),
            auth=auth,
            session=session,
            retry=retry,
            timeout=s.timeout_seconds,
        )
        # Replaces the library's adapter (same prefix, same retries) with one whose
        # connections the DEADLINE watchdog can cut.
        session.mount(s.url, _DeadlineAdapter(max_retries=retry))
        return client

    def _read_body(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """Response hook: read the body here, in chunks, within ``max_response_bytes``.

        requests calls response hooks before it reads the body, so this is where an
        over-size answer is stopped before it fills the memory (TOO_LARGE); the
        deadline watchdog cuts a body that comes too slowly. Counted after gzip
        decoding, so a small compressed answer cannot expand past the limit either.
        """
        limit = self.settings.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            response.close()
            raise _TooLarge(int(declared), declared=True)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > limit:
                response.close()
                raise _TooLarge(size, declared=False)
            chunks.append(chunk)
        deadline = getattr(_CURRENT, "deadline", None)
        if deadline is not None:
            deadline.finish()  # the connection may go back to the pool untouched
            if deadline.expired:  # cut: what was read may end early without an error
                raise requests.exceptions.ReadTimeout("the request's deadline passed")
        response._content = b"".join(chunks)
        response._content_consumed = True

    def _remember(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """Response hook: keep the last response so errors can cite status and body."""
        self.requests_sent += 1
        self._local.response = response

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the MetricSource protocol -----------------------------------------------------

    def history(self, query: str, start: TimeLike, end: TimeLike, step: float) -> pd.Series:
        """The one series ``query`` returns; see the module's edge policies."""
        self._check_counters(query)
        step_s, points = self._points(start, end, step)
        raw = self._fetch(query, points, step_s, key_of=_all_labels)
        if len(raw) > 1 and self.settings.multiple_series == "error":
            shown = ", ".join(_fmt_labels(key) for key in list(raw)[:3])
            more = f" and {len(raw) - 3} more" if len(raw) > 3 else ""
            raise PermanentError(
                f"query {query!r} returned {len(raw)} series where one was expected: "
                f"{shown}{more} (aggregate it, e.g. sum(...), or set "
                "prometheus.multiple_series to sum or max)"
            )
        cleaned = [_clean(r) for r in raw.values()]
        non_finite = sum(c[1] for c in cleaned)
        negative = sum(c[2] for c in cleaned)
        if not cleaned:
            log.debug("empty result for %r", query)
            combined = np.full(len(points), np.nan)
        elif len(cleaned) == 1:
            combined = cleaned[0][0]
        else:
            stack = np.vstack([c[0] for c in cleaned])
            all_nan = np.isnan(stack).all(axis=0)
            # A step is missing only when every series misses it: absent is not zero.
            if self.settings.multiple_series == "sum":
                combined = np.where(np.isnan(stack), 0.0, stack).sum(axis=0)
            else:
                combined = np.where(np.isnan(stack), -np.inf, stack).max(axis=0)
            combined[all_nan] = np.nan
        out = pd.Series(combined, index=_index(points, step_s), dtype=float, name=query)
        out.attrs.update(self._attrs(query, (), combined, points, non_finite, negative, len(raw)))
        return out

    def history_by(
        self,
        query: str,
        start: TimeLike,
        end: TimeLike,
        step: float,
        by: Sequence[str] = DEFAULT_BY,
    ) -> dict[Key, pd.Series]:
        """``sum by (<by>) (query)``: every workload in one request per page.

        Each series carries ``attrs["series_count"]``: the number of input series
        behind its sum at each step (PARTIAL_SERIES). A series without one of the
        ``by`` labels gets "" there (PromQL's own rule: an absent label equals the
        empty one). Workloads without data are absent keys.
        """
        labels = tuple(by)
        for name in labels:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise InputError("by", f"{name!r} is not a label name", "use e.g. namespace")
        self._check_counters(query)
        wrapped = counted_sum(query, labels)
        step_s, points = self._points(start, end, step)

        def key_of(metric: dict[str, str]) -> Key:
            # The count series carry the marker label; the sums do not.
            return (metric.get(AGG_LABEL, ""), *(metric.get(k, "") for k in labels))

        raw = self._fetch(wrapped, points, step_s, key_of=key_of)
        counts = {key[1:]: r for key, r in raw.items() if key[0] == AGG_COUNT}
        index = _index(points, step_s)
        out: dict[Key, pd.Series] = {}
        for marked, r in raw.items():
            if marked[0] != "":
                continue
            key = marked[1:]
            values, non_finite, negative = _clean(r)
            if np.isnan(values).all():
                # Only NaN/Inf samples: no usable data, so no key ("absent", not "zero").
                log.info("%s: %s has no finite sample; left out", wrapped, "/".join(key))
                continue
            # numpy first, pandas once: a 1,000-workload tick spends its time here.
            series = pd.Series(values, index=index, dtype=float, name="/".join(key), copy=False)
            series.attrs.update(self._attrs(wrapped, key, values, points, non_finite, negative, 1))
            series.attrs["series_count"] = _series_count(counts.get(key), len(points))
            out[key] = series
        return out

    def backfill(
        self,
        query: str,
        end: TimeLike,
        *,
        seconds: float | None = None,
        step: float | None = None,
        by: Sequence[str] = DEFAULT_BY,
    ) -> dict[Key, pd.Series]:
        """The start-up history of every workload (default: ``backfill_seconds``).

        The controller calls this once before its first tick so that it does not
        start cold; a restart loses nothing because the history lives in Prometheus.
        Pages keep each request under the server's points limit and the client's
        samples budget (see the module docstring).
        """
        end_s = to_unix(end, "end")
        window = self.settings.backfill_seconds if seconds is None else seconds
        return self.history_by(query, end_s - window, end_s, step or self.settings.step_seconds, by)

    # -- internals ---------------------------------------------------------------------

    def _check_counters(self, query: str) -> None:
        policy = self.settings.counter_check
        if policy == "off":
            return
        bare = bare_counters(query)
        if not bare:
            return
        problem = (
            f"{', '.join(bare)} looks like a counter used without rate(): a counter only "
            "grows and drops to 0 when a pod restarts, so it is not a load"
        )
        fix = f"write e.g. rate({bare[0]}[5m]), or set prometheus.counter_check to off"
        if policy == "error":
            raise InputError("query", problem, fix)
        if query not in self._warned:
            self._warned.add(query)
            log.warning("%s (%s): %s", problem, fix, query)

    def _points(self, start: TimeLike, end: TimeLike, step: float) -> tuple[int, np.ndarray]:
        step_f = float(step)
        if not math.isfinite(step_f) or step_f < 1 or step_f != round(step_f):
            raise InputError("step", f"{step!r} is not a whole number of seconds >= 1", "")
        step_s = int(step_f)
        start_s, end_s = to_unix(start, "start"), to_unix(end, "end")
        if end_s < start_s:
            raise InputError("end", "the range ends before it starts", "swap start and end")
        points = grid(start_s, end_s, step_s)
        if len(points) == 0:
            raise InputError(
                "start", f"[{start_s}, {end_s}] holds no multiple of the step {step_s} s", ""
            )
        return step_s, points

    def _fetch(
        self,
        query: str,
        points: np.ndarray,
        step: int,
        key_of: Callable[[dict[str, str]], Key],
    ) -> dict[Key, _Raw]:
        """Run ``query`` page by page; key -> samples on ``points`` (gaps marked)."""
        s = self.settings
        out: dict[Key, _Raw] = {}
        # Page size from the series count: remembered from the last call of this query,
        # else assumed, then the series seen so far in this call.
        series = self._series_seen.get(query, ASSUMED_SERIES)
        i = 0
        while i < len(points):
            size = page_points(series, s.max_points, s.max_samples_per_request)
            first, last = int(points[i]), int(points[min(i + size, len(points)) - 1])
            i += size
            for item in self._range(query, first, last, step):
                try:
                    key = key_of(item["metric"])
                    pairs = item["values"]
                except (KeyError, TypeError) as err:
                    raise PermanentError(
                        f"unexpected answer to {query!r}: a series without metric/values "
                        f"({_snippet(json.dumps(item).encode())})"
                    ) from err
                raw = out.get(key)
                if raw is None:
                    raw = out[key] = _Raw(
                        np.full(len(points), np.nan), np.zeros(len(points), dtype=bool)
                    )
                if not pairs:
                    continue
                ts = np.fromiter((float(p[0]) for p in pairs), dtype=float, count=len(pairs))
                vs = np.array([p[1] for p in pairs], dtype=float)
                pos = np.rint((ts - points[0]) / step).astype(np.int64)
                inside = (pos >= 0) & (pos < len(points))
                pos, vs = pos[inside], vs[inside]
                if raw.present[pos].any():
                    # Two series under one key: only possible with duplicate label sets.
                    raise PermanentError(
                        f"query {query!r} returned two series with the same labels {key}"
                    )
                raw.values[pos] = vs
                raw.present[pos] = True
            # The next page is sized for every series seen so far; one that first
            # appears later in the range can exceed the budget by its own share.
            series = len(out)
        self._series_seen[query] = series
        return out

    def _attrs(
        self,
        query: str,
        key: Key,
        values: np.ndarray,
        points: np.ndarray,
        non_finite: int,
        negative: int,
        combined: int,
    ) -> dict[str, Any]:
        """``series.attrs`` (see ``SeriesAttrs``), including the STALE policy."""
        finite = np.flatnonzero(~np.isnan(values))
        last = float(points[finite[-1]]) if finite.size else None
        stale = last is None or float(points[-1]) - last > self.settings.stale_after_seconds
        if non_finite or negative:
            log.debug(
                "%s %s: %d NaN/Inf and %d negative samples treated as missing",
                query,
                "/".join(key),
                non_finite,
                negative,
            )
        return {
            "query": query,
            "key": key,
            "stale": bool(stale and last is not None),
            "last_sample": last,
            "non_finite": non_finite,
            "negative": negative,
            "combined": combined,
        }

    def _range(self, query: str, first: int, last: int, step: int) -> list[dict[str, Any]]:
        """One ``query_range`` request, every failure mapped to our error classes."""
        s = self.settings
        self._local.response = None
        where = f"{s.url} query_range {query!r}"
        deadline = _Deadline(s.timeout_seconds)
        _CURRENT.deadline = deadline
        try:
            try:
                result = self._client.custom_query_range(
                    query,
                    start_time=datetime.fromtimestamp(first, UTC),
                    end_time=datetime.fromtimestamp(last, UTC),
                    step=str(step),
                    params={
                        **s.query_params,
                        "timeout": f"{max(int(s.timeout_seconds * 1000), 1)}ms",
                    },
                )
            except Exception as err:
                if deadline.expired:  # whatever the cut connection raised (reset, EOF, TLS)
                    raise RetryableError(
                        f"{where}: no answer within {s.timeout_seconds:g} s (a deadline for "
                        "the whole request, body included; retried next tick)"
                    ) from err
                raise
            finally:
                deadline.finish()
                _CURRENT.deadline = None
        except _TooLarge as err:
            raise RetryableError(
                f"{where}: the answer {err.describe()} exceeds prometheus.max_response_bytes "
                f"({s.max_response_bytes:,} bytes); refused unread. Lower "
                "prometheus.max_samples_per_request or narrow the query (fewer series), "
                "or raise max_response_bytes"
            ) from err
        except requests.exceptions.Timeout as err:
            raise RetryableError(
                f"{where}: no answer within {s.timeout_seconds:g} s (timeout; retried next tick)"
            ) from err
        except requests.exceptions.SSLError as err:
            raise PermanentError(
                f"{where}: TLS failed ({_reason(err)}); check prometheus.tls (ca_file, "
                "cert_file/key_file for client certificates) and the URL scheme"
            ) from err
        except requests.exceptions.ConnectionError as err:
            if "Read timed out" in str(err):
                raise RetryableError(
                    f"{where}: no answer within {s.timeout_seconds:g} s (timeout)"
                ) from err
            raise RetryableError(f"{where}: cannot connect ({_reason(err)})") from err
        except requests.exceptions.JSONDecodeError as err:  # a 200 whose body is not JSON
            raise self._not_json(where) from err
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as err:
            raise PermanentError(f"{where}: bad URL ({err})") from err
        except requests.exceptions.RequestException as err:
            raise RetryableError(f"{where}: request failed ({err})") from err
        except PrometheusApiClientException as err:
            raise self._http_error(where, err) from err
        except (KeyError, TypeError) as err:
            body = self._last_body()
            raise PermanentError(
                f"{where}: the answer is JSON but not the Prometheus API's "
                f"({_snippet(body)}); check that the URL is a PromQL API"
            ) from err
        if not isinstance(result, list) or any(not isinstance(r, dict) for r in result):
            raise PermanentError(
                f"{where}: expected a matrix of series, got {_snippet(repr(result).encode())}"
            )
        self._check_warnings(where)
        return result

    def _check_warnings(self, where: str) -> None:
        """PARTIAL policy: an answer with ``warnings`` may lack some data.

        Thanos (partial_response) and federated setups answer 200 with ``warnings``
        when a store is down: a sum over fewer series looks like a drop in load, the
        one thing that must never cause a scale-down. ``warnings`` follows ``data`` in
        the body, so only its tail is searched before decoding it again.
        """
        body = self._last_body()
        if b'"warnings"' not in body[-65536:]:
            return
        try:
            warnings = json.loads(body).get("warnings") or []
        except (ValueError, AttributeError):
            return
        if not warnings:
            return
        said = "; ".join(map(str, warnings))[:300]
        text = f"{where}: the answer carries warnings (partial data?): {said}"
        if self.settings.partial_answers == "refuse":
            raise RetryableError(text + " (refused; set prometheus.partial_answers to accept)")
        log.warning("%s (accepted)", text)

    def _last_body(self) -> bytes:
        response = getattr(self._local, "response", None)
        return bytes(response.content) if response is not None else b""

    def _not_json(self, where: str) -> AutoscalerErrorType:
        """NOT_JSON: name what came back (an HTML page's title, or the first bytes)."""
        response = getattr(self._local, "response", None)
        status = int(response.status_code) if response is not None else 0
        body = self._last_body()
        ctype = response.headers.get("Content-Type", "") if response is not None else ""
        text = (
            f"{where}: HTTP {status} with {_describe_body(body, ctype)} instead of the API's JSON"
        )
        if status >= 500 or status in (408, 429):
            return RetryableError(text + "; a proxy or the server is in trouble, retried")
        return PermanentError(text + _hint(status))

    def _http_error(self, where: str, err: PrometheusApiClientException) -> AutoscalerErrorType:
        """QUERY_ERROR / SERVER_ERROR: classify a non-200 answer by its status."""
        # The response hook has seen the answer (the library only keeps its repr).
        response = getattr(self._local, "response", None)
        status = int(response.status_code) if response is not None else 0
        body = self._last_body()
        if response is None:
            return PermanentError(f"{where}: {err}")
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and "error" in decoded:
            detail = f"{decoded.get('errorType', 'error')}: {decoded['error']}"
        else:
            ctype = response.headers.get("Content-Type", "") if response is not None else ""
            detail = f"with {_describe_body(body, ctype)}"
        text = f"{where}: HTTP {status} {detail}"
        if status in (408, 429) or status >= 500:
            return RetryableError(text)
        if "maximum resolution" in text:
            return PermanentError(text + " (lower prometheus.max_points to the server's limit)")
        return PermanentError(text + _hint(status))


def _describe_body(body: bytes, ctype: str) -> str:
    is_html = "html" in ctype.lower() or body.lstrip()[:15].lower().startswith(
        (b"<!doctype", b"<html")
    )
    if is_html:
        title = _title(body.decode("utf-8", errors="replace"))
        return f"an HTML page (title {title!r})" if title else "an HTML page"
    return f"a body that is not JSON ({_snippet(body, 120)!r})"


def _hint(status: int) -> str:
    """What to fix for a permanent failure, by HTTP status."""
    if status in (401, 403):
        return " (check the bearer token, basic auth and headers, e.g. X-Scope-OrgID)"
    if status in (400, 422):
        return " (fix the PromQL; try it in the Prometheus UI)"
    return (
        "; check that the URL is the PromQL API (Mimir: .../prometheus, "
        "VictoriaMetrics cluster: .../select/0/prometheus)"
    )


#: Bytes read at a time from an answer (the size limit is checked between reads).
_CHUNK = 1 << 16

#: The ``_Deadline`` of the request in flight on this thread (read by ``_TrackedPool``).
_CURRENT = threading.local()


class _TooLarge(Exception):
    """An answer over ``max_response_bytes`` (raised by the body hook, mapped in _range)."""

    def __init__(self, size: int, *, declared: bool) -> None:
        super().__init__(size)
        self.size = size
        self.declared = declared

    def describe(self) -> str:
        if self.declared:
            return f"of {self.size:,} bytes (Content-Length)"
        return f"of more than {self.size - 1:,} bytes"


class _Deadline:
    """DEADLINE policy: one request, connect to last byte, within ``seconds``.

    A read timeout alone restarts with every packet, so a server that drip-feeds its
    answer (20 bytes a second) would hold a tick for minutes. A timer thread cuts the
    request's connection (``shutdown``) when the time is up; the blocked read then
    fails at once and ``_range`` reports a timeout. ``finish`` disarms it as soon as
    the body is read, so a connection going back to the pool is never cut.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self.conn: Any = None
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, conn: Any) -> None:
        with self._lock:
            self.conn = conn

    def finish(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def _expire(self) -> None:
        # Bounded: a connection still being opened gets its socket within the connect
        # timeout (= the same seconds); wait for it at most that long, then give up.
        stop = time.monotonic() + self.seconds
        while True:
            with self._lock:
                if self._done:
                    return
                sock = getattr(self.conn, "sock", None)
                if sock is not None:
                    self.expired = True
                    try:
                        # The plain socket's shutdown, also under TLS: it wakes the
                        # blocked read with EOF without touching the TLS state.
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
            if time.monotonic() > stop:
                return
            time.sleep(0.02)


class _TrackedPool(HTTPConnectionPool):
    """Hands each connection it gives out to the request's ``_Deadline``."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        deadline = getattr(_CURRENT, "deadline", None)
        if deadline is not None:
            deadline.attach(conn)
        return conn


class _TrackedHTTPSPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        deadline = getattr(_CURRENT, "deadline", None)
        if deadline is not None:
            deadline.attach(conn)
        return conn


_TRACKED_POOLS = {"http": _TrackedPool, "https": _TrackedHTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connection pools that report to ``_Deadline``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_TRACKED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_TRACKED_POOLS)
        return manager


@dataclass
class _Raw:
    """One series as fetched: values on the grid, and which steps had a sample."""

    values: np.ndarray
    present: np.ndarray


def _clean(raw: _Raw) -> tuple[np.ndarray, int, int]:
    """NON_FINITE and NEGATIVE policies: such samples become NaN; return the counts."""
    v = raw.values
    bad = raw.present & ~np.isfinite(v)
    neg = raw.present & np.isfinite(v) & (v < 0)
    out = v.copy()
    out[bad | neg] = np.nan
    return out, int(bad.sum()), int(neg.sum())


def counted_sum(query: str, by: Sequence[str]) -> str:
    """``sum by (<by>) (query)`` and, in the same answer, how many series it summed.

    ``sum by (L) (Q) or label_replace(count by (L) (Q), AGG_LABEL, "count", "", "")``:
    the count series carry ``AGG_LABEL="count"``, so ``or`` keeps both (their label
    sets differ) and one round trip returns the load and the number of input series
    behind it at each step (PARTIAL_SERIES policy).
    """
    group = f"by ({', '.join(by)}) " if by else ""
    count = f'label_replace(count {group}({query}), "{AGG_LABEL}", "{AGG_COUNT}", "", "")'
    return f"sum {group}({query}) or {count}"


def _series_count(raw: _Raw | None, n: int) -> np.ndarray:
    """Input series behind a sum at each step (float, NaN where unknown), read-only."""
    out = np.full(n, np.nan)
    if raw is not None:
        ok = raw.present & np.isfinite(raw.values)
        out[ok] = raw.values[ok]
    out.flags.writeable = False
    return out


def _all_labels(metric: dict[str, str]) -> Key:
    """Key of a series in ``history``: all its labels, as sorted "name=value" items."""
    return tuple(f"{k}={v}" for k, v in sorted(metric.items()))


def _fmt_labels(key: Key) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in (item.split("=", 1) for item in key)) + "}"


def _index(points: np.ndarray, step_s: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(points, unit="s", utc=True), freq=f"{step_s}s")


def _reason(err: Exception) -> str:
    """The useful part of a urllib3 error chain ("Connection refused", "[SSL: ...] ...")."""
    text = str(err)
    for pattern in (r"\[Errno -?\d+\] ([^'\")]+)", r"(\[SSL: [^\]]+\][^'\"(]*)"):
        m = re.search(pattern, text)
        if m:
            return m.group(1).strip()
    return text[:200]
