"""``ControllerSettings``: every knob of ``autoscaler run``, typed, grouped and documented.

Built once in the entry point (``autoscaler run``, ``explain``, ``report``) from, in
order of precedence: keyword arguments, environment variables (``AUTOSCALER_`` prefix,
``__`` between levels: ``AUTOSCALER_LOOP__SYNC_SECONDS=30``,
``AUTOSCALER_PROMETHEUS__URL=...``), then a YAML file (``--config FILE``). Then passed
down; nothing reads settings from globals. Each group is the settings model of the
module that uses it (Prometheus source, Kubernetes client, leader election, API
server); the groups defined here are the controller's own. Bad values are an
``InputError`` naming the field (``loop.sync_seconds: ...``), never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from autoscaler.api.settings import ApiSettings
from autoscaler.kube.client import KubeSettings
from autoscaler.kube.leader import LeaderSettings
from autoscaler.sources.settings import PrometheusSettings
from models.errors import InputError


class LoopSettings(BaseModel):
    """The reconcile loop."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must fail, not vanish

    #: Seconds between reconciles. 15 s = the HPA's own sync period: a fresher value
    #: could not be used sooner, a staler one would cost reaction time.
    sync_seconds: float = Field(default=15.0, gt=0, le=600)
    #: Seconds between full refits of each forecaster (predictions run every tick on
    #: the cheap ``update`` path). One hour keeps a 1,000-workload refit off most ticks.
    refit_seconds: float = Field(default=3600.0, gt=0)
    #: Seconds after which the newest sample counts as missing data (fallback starts).
    #: 180 s = three 60-s steps: one late scrape is not an outage, three are.
    stale_after_seconds: float = Field(default=180.0, gt=0)
    #: Seconds of history fetched for a workload on its first tick (so it never starts
    #: cold); the rest of ``prometheus.backfill_seconds`` follows one page per tick.
    #: 6 h = 360 points at 60 s: enough for the short-horizon models, and cheap enough
    #: for 1,000 workloads to fit in one 15-s tick.
    initial_backfill_seconds: float = Field(default=21_600.0, gt=0)
    #: Seconds of older history fetched per tick until the backfill is complete (one
    #: query per tick). 3 h pages bring 14 days in 112 ticks (28 minutes at 15 s) and
    #: keep a page tick of 1,000 workloads inside one sync on a loaded 2-core machine
    #: (measured 2026-11-27; docs/decisions.md keeps the figures).
    backfill_page_seconds: float = Field(default=10_800.0, gt=0)
    #: Seconds between unconditional re-writes of each owned HPA (between them, only a
    #: changed ceiling is written). 300 s repairs a hand-edited HPA within 5 minutes.
    resync_seconds: float = Field(default=300.0, gt=0)
    #: Seconds between status writes of a PredictiveAutoscaler whose replicas,
    #: constraint and fallback state did not change (the forecast figure still moves).
    status_interval_seconds: float = Field(default=60.0, gt=0)
    #: Default forecaster for autoscalers whose spec leaves it at ``auto`` and the
    #: registry has no ``auto`` model (it falls back to this name).
    fallback_model: str = "last"
    #: Create and own one HPA per Active PredictiveAutoscaler. False where KEDA owns
    #: the HPAs (its ScaledObjects call our external scaler): two HPAs selecting the
    #: same pods would both stop scaling (AmbiguousSelector).
    manage_hpas: bool = True


class LearningSettings(BaseModel):
    """Calibrating what a PredictiveAutoscaler omits (capacity per replica, lead time)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must fail, not vanish

    #: Seconds between calibrations of a workload that learnt its values. An hour
    #: follows a release that moves the capacity within the hour, and costs five small
    #: queries per workload per hour.
    interval_seconds: float = Field(default=3600.0, gt=0)
    #: Seconds between attempts while nothing could be learnt (too little data yet).
    retry_seconds: float = Field(default=600.0, gt=0)
    #: Seconds of CPU and load history each calibration fits (the change-point search
    #: keeps only the part after the last change). 6 h = the first tick's backfill.
    window_seconds: float = Field(default=21_600.0, gt=0)
    #: At most this many calibrations per tick, so that 1,000 new workloads spread
    #: their queries over several ticks instead of stalling one.
    max_per_tick: int = Field(default=4, ge=1)


class LedgerSettings(BaseModel):
    """Where the spend ledger (money spent this month per environment) is kept."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must fail, not vanish

    #: JSON file, written atomically after every accrual by the leader. Mount a volume
    #: here; the CostBudget status also carries the spend for operators.
    path: Path = Path("/var/lib/predictive-autoscaler/ledger.json")


class ShadowSettings(BaseModel):
    """ForecastOnly (shadow mode) records, read by ``autoscaler report``."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must fail, not vanish

    #: JSON-lines file; one record per ForecastOnly workload per tick.
    path: Path = Path("/var/lib/predictive-autoscaler/shadow.jsonl")
    #: Largest size in bytes before the file is rotated to ``<path>.1`` (one old copy).
    max_bytes: int = Field(default=50_000_000, ge=1_000)


class ObservabilitySettings(BaseModel):
    """Logs and the controller's own /metrics."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must fail, not vanish

    #: debug, info, warning or error. info logs clamps, fallbacks, leader changes and
    #: one summary line per tick; debug adds one line per workload per tick.
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    #: Port of the Prometheus exposition server (0 = none); 8080 is the port deploy/ exposes.
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    metrics_addr: str = "0.0.0.0"


def _dev_api() -> ApiSettings:
    # Loopback plain HTTP is the only default that validates without certificates;
    # deploy/ sets TLS and delegated auth through the environment or the file.
    return ApiSettings(bind="127.0.0.1:6443", insecure=True)


class ControllerSettings(BaseSettings):
    """Everything ``autoscaler run`` needs, in typed groups."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOSCALER_", env_nested_delimiter="__", extra="forbid", yaml_file=None
    )

    loop: LoopSettings = Field(default_factory=LoopSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    kube: KubeSettings = Field(default_factory=KubeSettings)
    leader: LeaderSettings = Field(default_factory=LeaderSettings)
    api: ApiSettings = Field(default_factory=_dev_api)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)
    shadow: ShadowSettings = Field(default_factory=ShadowSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments beat the environment, which beats the YAML file.
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))


def load_settings(path: Path | None = None, **overrides: Any) -> ControllerSettings:
    """Build the settings once: ``overrides`` > environment > ``path`` (YAML)."""
    where = str(path) if path is not None else "environment"
    if path is not None and not path.is_file():
        raise InputError(str(path), "settings file not found", "give an existing YAML file")
    try:
        if path is None:
            return ControllerSettings(**overrides)

        class FromFile(ControllerSettings):
            model_config = SettingsConfigDict(yaml_file=path)

        return FromFile(**overrides)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(
            f"{where}: {field}" if field else where,
            str(first["msg"]).removeprefix("Value error, "),
            "see docs/controller.md (Settings)",
        ) from None
    except InputError as err:  # a sub-model's own validation (e.g. the API's TLS rules)
        raise InputError(f"{where}: {err.where}", err.problem, err.fix) from None
