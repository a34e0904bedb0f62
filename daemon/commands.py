"""Click commands of the daemon: `sortbox watch` and `sortbox status`.

Neither imports TensorFlow: the model is loaded inside the service when the watch starts.
"""

from __future__ import annotations

from pathlib import Path

import click

from daemon.config import DuplicatePolicy

_FOLDER = click.Path(file_okay=False, path_type=Path)


@click.command("watch")
@click.option("--inbox", type=_FOLDER, help="Folder to watch for incoming images.")
@click.option("--output", type=_FOLDER, help="Folder that receives OUTPUT/<category>/ and friends.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file with the same keys as these flags; flags override it.",
)
@click.option(
    "--model",
    "model_name",
    help="Registered model whose production version is served. Defaults to the only model.",
)
@click.option("--once", is_flag=True, default=None, help="Process the inbox until it is empty, then exit.")
@click.option(
    "--exit-when-idle",
    type=float,
    help="Exit after this many seconds with nothing to process. Defaults to never.",
)
@click.option(
    "--settle-ms",
    type=int,
    help="Milliseconds a file's size and mtime must stay unchanged before it is read. Default 500.",
)
@click.option(
    "--close-timeout-seconds",
    type=float,
    help="Seconds of quiet after which a file still open for writing, or without its close "
    "event, is read anyway. Default 30.",
)
@click.option(
    "--rescan-seconds",
    type=float,
    help="Seconds between full inbox scans that catch lost events. Default 60.",
)
@click.option(
    "--polling/--no-polling",
    default=None,
    help="Poll the folder instead of using inotify (for network mounts). Default off.",
)
@click.option(
    "--recursive/--no-recursive",
    default=None,
    help="Watch subfolders of the inbox too; the output must then be outside it. Default off.",
)
@click.option("--max-batch-size", type=int, help="Maximum files per model call. Default 32.")
@click.option(
    "--max-wait-ms",
    type=int,
    help="Milliseconds the first file of a batch waits for more files. Default 500.",
)
@click.option(
    "--queue-size",
    type=int,
    help="Capacity of the event queue and of the files waiting to settle. Default 10000.",
)
@click.option(
    "--decode-workers",
    type=int,
    help="Threads that hash and decode files while the model runs. Default 4.",
)
@click.option(
    "--duplicates",
    type=click.Choice([policy.value for policy in DuplicatePolicy]),
    help="For content classified before: reuse its category, or run the model again. "
    "Default reuse.",
)
@click.option(
    "--review-below",
    type=float,
    help="Confidence (0-1) under which files go to OUTPUT/_review/<category>/. Default off.",
)
@click.option(
    "--max-pixels",
    type=int,
    help="Images with more pixels fail before decoding. Default 120000000.",
)
@click.option(
    "--model-poll-seconds",
    type=float,
    help="Seconds between checks for a newly promoted version (SIGHUP checks now). Default 5.",
)
@click.option(
    "--heartbeat-seconds",
    type=float,
    help="Seconds between heartbeats that `sortbox status` reads. Default 5.",
)
@click.pass_context
def watch_command(ctx: click.Context, config_path: Path | None, **options) -> None:
    """Watch an inbox, classify incoming images with the production model and sort them.

    Each file gets a prediction row in the database and moves to OUTPUT/<category>/ (low
    confidence: OUTPUT/_review/<category>/, unreadable: OUTPUT/_failed/). Ctrl-C or SIGTERM
    finish the batch in hand and exit; SIGHUP checks for a new production version now.
    """
    from daemon.config import build_settings
    from daemon.runner import run_watch

    settings = build_settings(config_path, options)
    summary = run_watch(settings, ctx.obj.open_registry())

    counts = ", ".join(f"{count} {status}" for status, count in sorted(summary.statuses.items()))
    click.echo(
        f"{summary.files} files in {summary.batches} batches ({counts or 'none'}); "
        f"stopped: {summary.stop_reason}"
    )
    if summary.stop_reason == "interrupted":
        ctx.exit(130)


@click.command("status")
@click.option(
    "--model",
    "model_name",
    help="Model whose production version is shown. Defaults to every registered model.",
)
@click.option(
    "--all",
    "all_daemons",
    is_flag=True,
    help="List every daemon ever started, not only those seen in the last 24 hours.",
)
@click.pass_context
def status_command(ctx: click.Context, model_name: str | None, all_daemons: bool) -> None:
    """Show the production models, recent daemons and the last hour's predictions."""
    from daemon.status import collect_status, describe_daemon

    # Status only reads: a mistyped --home must fail, not create an empty registry.
    registry = ctx.obj.open_registry(create=False)
    report = collect_status(registry, model_name, all_daemons=all_daemons)

    if not report.models:
        click.echo("model: none registered yet; train one with `sortbox train`")
    for state in report.models:
        production = state.production
        if production is None:
            click.echo(f"model: {state.model_name} has no production version")
        else:
            click.echo(f"model: {production.model_name} v{production.version} (production)")

    if not report.daemons:
        click.echo("daemons: none has written a heartbeat in the last 24 hours")
    for state in report.daemons:
        click.echo(describe_daemon(state))
    if report.hidden_daemons:
        noun = "daemon" if report.hidden_daemons == 1 else "daemons"
        click.echo(f"({report.hidden_daemons} older {noun} not shown; --all lists them)")

    minutes = int(report.window.total_seconds() // 60)
    click.echo(f"last {minutes} minutes: {report.recent.total} files")
    statuses: dict[str, int] = {}
    categories: dict[str, int] = {}
    for group in report.recent.by_category:
        status = group.status.value if group.status is not None else "?"
        statuses[status] = statuses.get(status, 0) + group.count
        if group.category is not None:
            categories[group.category] = categories.get(group.category, 0) + group.count
    for status, count in sorted(statuses.items()):
        click.echo(f"  {status}: {count}")
    for category, count in sorted(categories.items(), key=lambda item: (-item[1], item[0])):
        click.echo(f"  category {category}: {count}")
    click.echo(f"throughput: {report.throughput_per_minute:.1f} files/minute over the last 5 minutes")
