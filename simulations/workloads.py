"""Workload definitions for the simulator: resources, capacity, start-up time, latency model.

A workload is what the simulator scales: how many requests per second one replica
serves, what a replica costs (its CPU and memory *requests*), how long a new pod takes
to become Ready, its replica bounds and the parameters of its M/M/c latency model.
The four platform workloads ship as YAML in ``simulations/workloads/``; a scenario
names one of them (or gives a path), and the CLI can also build one from flags.

Callers: ``simulations.scenario``, ``simulations.engine``, ``autoscaler.cli.simulate``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.errors import InputError, validation_input_error, yaml_problem
from policies.prices import replica_hourly_price
from policies.quantity import cpu_cores, memory_gib

WORKLOADS_DIR = Path(__file__).resolve().parent / "workloads"


def parse_cpu_milli(text: str, where: str) -> int:
    """Kubernetes CPU quantity (``500m``, ``2``, ``0.5``) in whole milli-cores."""
    milli = cpu_cores(text, where) * 1000
    if milli <= 0 or milli != milli.to_integral_value():
        raise InputError(where, f"CPU quantity {text!r} is not a positive whole milli-core", "")
    return int(milli)


def parse_memory_gib(text: str, where: str) -> float:
    """Kubernetes memory quantity (``128Mi``, ``1Gi``) in GiB."""
    gib = memory_gib(text, where)
    if gib <= 0:
        raise InputError(where, f"memory quantity {text!r} must be positive", "")
    return float(gib)


class Resources(BaseModel):
    """CPU and memory, as Kubernetes quantities."""

    model_config = ConfigDict(extra="forbid")
    cpu: str
    memory: str


class ResourceSpec(BaseModel):
    """Container requests and limits. A replica costs its requests (OpenCost's rule)."""

    model_config = ConfigDict(extra="forbid")
    requests: Resources
    limits: Resources


class StartupTime(BaseModel):
    """Seconds from pod creation to Ready.

    ``fixed``: exactly ``seconds`` for every pod. ``lognormal``: median ``seconds`` and
    log-space spread ``sigma``, drawn from a generator seeded with ``seed`` so that runs
    repeat exactly.
    """

    model_config = ConfigDict(extra="forbid")
    distribution: Literal["fixed", "lognormal"] = "fixed"
    #: seconds; the exact value (fixed) or the median (lognormal).
    seconds: Annotated[float, Field(ge=0.0, le=3600.0)] = 30.0
    #: log-space standard deviation (lognormal only); 0.25 puts the p95 at ~1.5x the median.
    sigma: Annotated[float, Field(ge=0.0, le=2.0)] = 0.25
    #: seed of the start-up time generator.
    seed: int = 0

    def sampler(self) -> StartupSampler:
        return StartupSampler(self)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the start-up time, in seconds."""
        if self.distribution == "fixed" or self.sigma == 0.0:
            return self.seconds
        from scipy.stats import norm

        return float(self.seconds * math.exp(self.sigma * float(norm.ppf(q))))


class StartupSampler:
    """Draws start-up times in creation order from one seeded stream."""

    def __init__(self, startup: StartupTime) -> None:
        self._startup = startup
        self._rng = np.random.default_rng(startup.seed)
        self._buffer: list[float] = []

    def draw(self) -> float:
        s = self._startup
        if s.distribution == "fixed" or s.sigma == 0.0:
            return s.seconds
        if not self._buffer:
            # Draw in blocks: one call per pod to numpy costs more than the pod itself.
            block = s.seconds * np.exp(s.sigma * self._rng.standard_normal(256))
            self._buffer = block[::-1].tolist()
        return self._buffer.pop()


class LatencyModel(BaseModel):
    """Parameters of the M/M/c latency estimate (``simulations.latency``).

    Each ready pod runs ``workers_per_pod`` servers, each serving
    ``capacity_rps / workers_per_pod`` requests per second on average, so the cluster is
    an M/M/c queue with ``c = ready pods * workers_per_pod``.
    """

    model_config = ConfigDict(extra="forbid")
    #: concurrent requests one pod works on (threads, workers); servers per pod.
    workers_per_pod: Annotated[int, Field(ge=1, le=1024)] = 1
    #: the platform SLO on p99 latency, in seconds.
    slo_p99_seconds: Annotated[float, Field(gt=0.0)] = 0.5


class CpuModel(BaseModel):
    """CPU per pod, for the cAdvisor series the controller's calibration reads.

    A pod burns ``idle_millicores`` while it exists plus ``millicores_per_rps`` for each
    request per second it serves, with multiplicative lognormal noise (``noise``,
    seeded): ``capacity_rps`` should then be ``(request - idle) / per_rps`` (checked).
    """

    model_config = ConfigDict(extra="forbid")
    idle_millicores: Annotated[float, Field(ge=0.0)]
    millicores_per_rps: Annotated[float, Field(gt=0.0)]
    noise: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    seed: int = 0


class Workload(BaseModel):
    """One workload the simulator scales."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    resources: ResourceSpec
    #: requests per second one replica serves at 100 % of its CPU request.
    capacity_rps: Annotated[float, Field(gt=0.0)]
    startup: StartupTime = StartupTime()
    min_replicas: Annotated[int, Field(ge=1)] = 1
    max_replicas: Annotated[int, Field(ge=1)] = 100
    latency: LatencyModel = LatencyModel()
    #: CPU per pod (optional): lets the controller learn the capacity in simulation.
    cpu: CpuModel | None = None

    @model_validator(mode="after")
    def _check(self) -> Workload:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        req, lim = self.resources.requests, self.resources.limits
        if parse_cpu_milli(lim.cpu, "limits.cpu") < parse_cpu_milli(req.cpu, "requests.cpu"):
            raise ValueError("limits.cpu is below requests.cpu")
        if self.cpu is not None:
            request = parse_cpu_milli(req.cpu, "requests.cpu")
            implied = (request - self.cpu.idle_millicores) / self.cpu.millicores_per_rps
            if not math.isclose(implied, self.capacity_rps, rel_tol=0.01):
                raise ValueError(
                    f"cpu: (request {request}m - idle {self.cpu.idle_millicores:g}m) /"
                    f" {self.cpu.millicores_per_rps:g}m per rps = {implied:.4g} rps, not"
                    f" capacity_rps {self.capacity_rps:g}"
                )
        return self

    @property
    def request_milli_cpu(self) -> int:
        return parse_cpu_milli(self.resources.requests.cpu, f"{self.name}.requests.cpu")

    @property
    def limit_milli_cpu(self) -> int:
        return parse_cpu_milli(self.resources.limits.cpu, f"{self.name}.limits.cpu")

    @property
    def request_memory_gib(self) -> float:
        return parse_memory_gib(self.resources.requests.memory, f"{self.name}.requests.memory")

    @property
    def hourly_price(self) -> float:
        """$ per hour of one replica: its requests at OpenCost's default prices."""
        req = self.resources.requests
        return replica_hourly_price({"cpu": req.cpu, "memory": req.memory}, where=self.name)

    @property
    def burst_factor(self) -> float:
        """How far above its request a pod can run (limit / request): caps served load."""
        return self.limit_milli_cpu / self.request_milli_cpu


def workload_from_dict(data: object, where: str) -> Workload:
    """Validate a workload mapping; ``InputError`` names the field."""
    if not isinstance(data, dict):
        raise InputError(where, "a workload must be a mapping", "see docs/simulator.md")
    try:
        workload = Workload.model_validate(data)
    except ValidationError as err:
        raise validation_input_error(err, where, "see docs/simulator.md") from err
    # Parse quantities now, so a bad one fails here and not mid-run.
    _ = workload.request_milli_cpu, workload.limit_milli_cpu, workload.request_memory_gib
    return workload


def bundled_workloads() -> list[str]:
    """Names of the workloads shipped in ``simulations/workloads/``."""
    return sorted(p.stem for p in WORKLOADS_DIR.glob("*.yaml"))


def load_workload(name_or_path: str) -> Workload:
    """A bundled workload by name, or a workload YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = WORKLOADS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise InputError(
                "workload",
                f"unknown workload {name_or_path!r}",
                f"choose one of {', '.join(bundled_workloads())} or give a YAML path",
            )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError(str(path), "file not found", "check the path") from err
    except yaml.YAMLError as err:
        raise InputError(str(path), yaml_problem(err), "fix the syntax") from err
    return workload_from_dict(data, str(path))


def custom_workload(
    capacity_rps: float,
    startup_seconds: float,
    min_replicas: int = 1,
    max_replicas: int = 1000,
    cpu_request: str = "500m",
    memory_request: str = "1Gi",
) -> Workload:
    """A workload built from CLI flags; start-up is exactly ``startup_seconds`` for every pod.

    Resources default to refinory-ai's requests so that costs stay comparable; limits are
    four times the requests.
    """
    cpu = parse_cpu_milli(cpu_request, "--cpu-request")
    mem = parse_memory_gib(memory_request, "--memory-request")
    data = {
        "name": "custom",
        "description": "built from command-line flags",
        "resources": {
            "requests": {"cpu": cpu_request, "memory": memory_request},
            "limits": {"cpu": f"{4 * cpu}m", "memory": f"{4 * mem:g}Gi"},
        },
        "capacity_rps": capacity_rps,
        "startup": {"distribution": "fixed", "seconds": startup_seconds},
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
    }
    return workload_from_dict(data, "flags")
