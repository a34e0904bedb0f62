"""Report of `sortbox status`: the production models, the daemons' heartbeats and recent work."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from registry.types import (
    PRODUCTION,
    DaemonHeartbeat,
    ModelVersion,
    PredictionFilter,
    PredictionStats,
)

# A daemon without a recorded stop that has not written a heartbeat for this many of its
# intervals is not responding: it was killed, crashed without cleanup, or hangs.
MISSED_HEARTBEATS_FOR_NOT_RESPONDING = 3
THROUGHPUT_WINDOW = timedelta(minutes=5)
# Without --all, status lists only the daemons that wrote a heartbeat within this period.
RECENT_DAEMONS_WINDOW = timedelta(hours=24)

# Keys of the heartbeat's settings JSON that carry the daemon's state; no setting uses them.
STATE_KEY = "daemon_state"
STOP_REASON_KEY = "stop_reason"
STATE_RUNNING = "running"
STATE_INBOX_MISSING = "inbox missing"
STATE_STOPPED = "stopped"


class Liveness(str, enum.Enum):
    """Liveness of a daemon, as its last heartbeat shows it."""

    RUNNING = "running"
    STOPPED = "stopped"
    NOT_RESPONDING = "not responding"


@dataclass(frozen=True)
class DaemonState:
    """One daemon's last heartbeat and the liveness it implies.

    `stop_reason` is set for a stopped daemon: "done", "idle", "interrupted", "terminated",
    "stopped" or "error". `inbox_missing` is True when a running daemon's inbox folder was
    deleted.
    """

    heartbeat: DaemonHeartbeat
    liveness: Liveness
    seconds_since: float
    stop_reason: str | None = None
    inbox_missing: bool = False


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
    hidden_daemons: int
    window: timedelta
    recent: PredictionStats
    throughput_per_minute: float
    generated_at: datetime


def daemon_state(heartbeat: DaemonHeartbeat, now: datetime) -> DaemonState:
    """Tell a cleanly stopped daemon from a running one and from one that stopped responding."""
    settings = heartbeat.settings
    seconds = (now - heartbeat.last_seen_at).total_seconds()
    if settings.get(STATE_KEY) == STATE_STOPPED:
        return DaemonState(
            heartbeat, Liveness.STOPPED, seconds, stop_reason=str(settings.get(STOP_REASON_KEY))
        )

    interval = settings.get("heartbeat_seconds", 5.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        interval = 5.0
    if seconds > MISSED_HEARTBEATS_FOR_NOT_RESPONDING * interval:
        return DaemonState(heartbeat, Liveness.NOT_RESPONDING, seconds)
    return DaemonState(
        heartbeat,
        Liveness.RUNNING,
        seconds,
        inbox_missing=settings.get(STATE_KEY) == STATE_INBOX_MISSING,
    )


def collect_status(
    registry,
    model_name: str | None = None,
    *,
    window: timedelta = timedelta(hours=1),
    all_daemons: bool = False,
    now: datetime | None = None,
) -> StatusReport:
    """Gather the production versions, heartbeats and the prediction counts of the last `window`.

    Args:
        registry: The opened registry.
        model_name: Model whose `production` alias is shown. Defaults to every registered model.
        window: Period that the per-status and per-category counts cover. Defaults to one hour.
        all_daemons: List every daemon that ever wrote a heartbeat, not only those seen within
            RECENT_DAEMONS_WINDOW. Defaults to False.
        now: Current UTC time; tests pass a fixed one.
    """
    now = now or datetime.now(timezone.utc)
    if model_name is not None:
        names = [registry.resolve_model_name(model_name)]
    else:
        names = [model.name for model in registry.list_models()]
    models = tuple(ModelState(name, registry.get_alias(name, PRODUCTION)) for name in names)

    # NOTE: heartbeat rows are never deleted, one per daemon run; old ones are only hidden here.
    heartbeats = registry.list_heartbeats()
    listed = [
        heartbeat
        for heartbeat in heartbeats
        if all_daemons or now - heartbeat.last_seen_at <= RECENT_DAEMONS_WINDOW
    ]
    daemons = tuple(daemon_state(heartbeat, now) for heartbeat in listed)
    recent = registry.prediction_stats(PredictionFilter(since=now - window))
    last_minutes = registry.prediction_stats(PredictionFilter(since=now - THROUGHPUT_WINDOW))
    throughput = last_minutes.total / (THROUGHPUT_WINDOW.total_seconds() / 60)

    return StatusReport(
        models=models,
        daemons=daemons,
        hidden_daemons=len(heartbeats) - len(listed),
        window=window,
        recent=recent,
        throughput_per_minute=throughput,
        generated_at=now,
    )


def describe_daemon(state: DaemonState) -> str:
    """Format one daemon's line of `sortbox status`."""
    beat = state.heartbeat
    if state.liveness is Liveness.STOPPED:
        liveness = f"stopped ({state.stop_reason})"
    elif state.liveness is Liveness.NOT_RESPONDING:
        liveness = "not responding (no heartbeat and no recorded stop: killed or hung)"
    elif state.inbox_missing:
        liveness = "running, inbox folder missing"
    else:
        liveness = "running"
    return (
        f"daemon {beat.daemon_id[:12]} on {beat.host} pid {beat.pid}: {liveness}, last heartbeat "
        f"{state.seconds_since:.0f} s ago, backlog {beat.backlog}, "
        f"inbox {beat.settings.get('inbox', '?')}"
    )
