"""Report of `sortbox status`: the production models, the daemons' heartbeats and recent work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from registry.types import (
    PRODUCTION,
    DaemonHeartbeat,
    ModelVersion,
    PredictionFilter,
    PredictionStats,
)

# A daemon that has not written a heartbeat for this many of its intervals counts as stopped.
MISSED_HEARTBEATS_FOR_STOPPED = 3
THROUGHPUT_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class DaemonState:
    """One daemon's last heartbeat and whether it is recent enough to call the daemon running."""

    heartbeat: DaemonHeartbeat
    running: bool
    seconds_since: float


@dataclass(frozen=True)
class ModelState:
    """A registered model and the version its `production` alias points to, if any."""

    model_name: str
    production: ModelVersion | None


@dataclass(frozen=True)
class StatusReport:
    """Everything `sortbox status` prints; `models` is empty while no model is registered."""

    models: tuple[ModelState, ...]
    daemons: tuple[DaemonState, ...]
    window: timedelta
    recent: PredictionStats
    throughput_per_minute: float
    generated_at: datetime


def _daemon_state(heartbeat: DaemonHeartbeat, now: datetime) -> DaemonState:
    interval = heartbeat.settings.get("heartbeat_seconds", 5.0)
    if not isinstance(interval, (int, float)) or interval <= 0:
        interval = 5.0
    seconds = (now - heartbeat.last_seen_at).total_seconds()
    return DaemonState(
        heartbeat=heartbeat,
        running=seconds <= MISSED_HEARTBEATS_FOR_STOPPED * interval,
        seconds_since=seconds,
    )


def collect_status(
    registry,
    model_name: str | None = None,
    *,
    window: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> StatusReport:
    """Gather the production versions, heartbeats and the prediction counts of the last `window`.

    Args:
        registry: The opened registry.
        model_name: Model whose `production` alias is shown. Defaults to every registered model.
        window: Period that the per-status and per-category counts cover. Defaults to one hour.
        now: Current UTC time; tests pass a fixed one.
    """
    now = now or datetime.now(timezone.utc)
    if model_name is not None:
        names = [registry.resolve_model_name(model_name)]
    else:
        names = [model.name for model in registry.list_models()]
    models = tuple(ModelState(name, registry.get_alias(name, PRODUCTION)) for name in names)

    daemons = tuple(_daemon_state(heartbeat, now) for heartbeat in registry.list_heartbeats())
    recent = registry.prediction_stats(PredictionFilter(since=now - window))
    last_minutes = registry.prediction_stats(PredictionFilter(since=now - THROUGHPUT_WINDOW))
    throughput = last_minutes.total / (THROUGHPUT_WINDOW.total_seconds() / 60)

    return StatusReport(
        models=models,
        daemons=daemons,
        window=window,
        recent=recent,
        throughput_per_minute=throughput,
        generated_at=now,
    )
