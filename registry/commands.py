"""`sortbox models ...`: list, inspect, promote, roll back, compare, tag, archive and verify.

Model names may be left out wherever they appear in brackets: the command then uses the only
registered model. Names cannot be all digits, so `promote 3` always means version 3.
The `predictions` and `db` groups live in their own modules and are re-exported here.
"""

from __future__ import annotations

import click

from registry.command_support import open_existing_registry
from registry.db_commands import db_group
from registry.formatting import format_number, format_table, format_text, format_time
from registry.prediction_commands import predictions_group
from registry.types import PRODUCTION

__all__ = ["db_group", "models_group", "predictions_group"]


def _parse_version(text: str) -> int:
    try:
        version = int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a version number", param_hint="VERSION")
    if version < 1:
        raise click.BadParameter(f"{text!r} is not a version number (1 or more)", param_hint="VERSION")
    return version


def _name_and_versions(arguments: tuple[str, ...], count: int) -> tuple[str | None, list[int]]:
    """Split `[NAME] V1 .. Vcount` into the optional name and the version numbers."""
    if len(arguments) == count:
        return None, [_parse_version(text) for text in arguments]
    if len(arguments) == count + 1:
        return arguments[0], [_parse_version(text) for text in arguments[1:]]
    expected = " ".join(["[NAME]"] + ["VERSION"] * count)
    raise click.UsageError(f"expected {expected}, got {len(arguments)} arguments")


def _name_and_version(arguments: tuple[str, ...]) -> tuple[str | None, int]:
    name, versions = _name_and_versions(arguments, 1)
    return name, versions[0]


@click.group("models")
def models_group() -> None:
    """List, inspect, promote and roll back registered model versions."""


@models_group.command("list")
@click.option("--name", "model_name", help="Only versions of this model. Defaults to all models.")
@click.pass_obj
def list_command(app, model_name: str | None) -> None:
    """List versions with validation accuracy, status and aliases; * marks production."""
    summaries = open_existing_registry(app).list_version_summaries(model_name)
    if not summaries:
        click.echo("No model versions registered yet; train one with `sortbox train`.")
        return
    rows = [
        (
            "*" if PRODUCTION in summary.version.aliases else " ",
            summary.version.model_name,
            summary.version.version,
            summary.version.status.value,
            format_number(summary.validation_accuracy),
            ", ".join(summary.version.aliases),
            summary.version.backbone,
            format_time(summary.version.created_at),
        )
        for summary in summaries
    ]
    headers = ("", "MODEL", "VERSION", "STATUS", "VAL_ACC", "ALIASES", "BACKBONE", "CREATED")
    for line in format_table(headers, rows):
        click.echo(line)


@models_group.command("show")
@click.argument("arguments", nargs=-1, metavar="[NAME] VERSION")
@click.pass_obj
def show_command(app, arguments: tuple[str, ...]) -> None:
    """Show everything about a version: settings, metrics, files and alias history."""
    name, version = _name_and_version(arguments)
    details = open_existing_registry(app).describe_version(name, version)
    model = details.version

    fields = [
        ("model", model.model_name),
        ("version", model.version),
        ("status", model.status.value),
        ("aliases", ", ".join(model.aliases)),
        ("artifact", model.artifact_uri),
        ("sha256", model.artifact_sha256),
        ("size", f"{model.artifact_size} bytes"),
        ("backbone", model.backbone),
        ("image size", f"{model.image_size[0]}x{model.image_size[1]}"),
        ("preprocessing", model.preprocessing),
        ("classes", ", ".join(model.class_names)),
        ("parent version", model.parent_version),
        ("dataset", model.dataset_fingerprint),
        ("training started", format_time(model.training_started_at)),
        ("training finished", format_time(model.training_finished_at)),
        ("training seconds", format_number(model.training_seconds, 1)),
        ("created", format_time(model.created_at)),
        ("description", model.description),
    ]
    fields += [(f"hyperparameter {key}", value) for key, value in sorted(model.hyperparameters.items())]
    fields += [(f"software {key}", value) for key, value in sorted(model.software_versions.items())]
    fields += [(f"tag {key}", value) for key, value in sorted(model.tags.items())]
    width = max(len(label) for label, _value in fields)
    for label, value in fields:
        click.echo(f"{label.ljust(width)}  {format_text(value)}")

    summaries = [metric for metric in details.metrics if metric.epoch is None]
    curves = [metric for metric in details.metrics if metric.epoch is not None]
    _echo_section(
        "Metrics",
        ("SPLIT", "METRIC", "CLASS", "VALUE"),
        [(m.split, m.name, m.class_name, format_number(m.value)) for m in summaries],
    )
    _echo_section(
        "Learning curves",
        ("EPOCH", "SPLIT", "METRIC", "VALUE"),
        [(m.epoch, m.split, m.name, format_number(m.value)) for m in curves],
    )
    _echo_section(
        "Files",
        ("KIND", "SIZE", "SHA256", "PATH"),
        [(f.kind, f.size, f.sha256[:12], f.path) for f in details.files],
    )
    _echo_section("Alias history", *_history_table(details.alias_history))


def _echo_section(title: str, headers, rows) -> None:
    click.echo("")
    if not rows:
        click.echo(f"{title}: none")
        return
    click.echo(f"{title}:")
    for line in format_table(headers, rows):
        click.echo(f"  {line}")


def _history_table(changes):
    headers = ("TIME", "MODEL", "ALIAS", "ACTION", "FROM", "TO", "USER", "REASON")
    rows = [
        (
            format_time(change.changed_at),
            change.model_name,
            change.alias,
            change.action.value,
            change.previous_version,
            change.new_version,
            change.user,
            change.reason,
        )
        for change in changes
    ]
    return headers, rows


_alias_option = click.option(
    "--alias", default=PRODUCTION, show_default=True, help="Alias to move."
)
_reason_option = click.option("--reason", help="Why the alias moves; kept in the alias history.")


def _echo_change(change) -> None:
    source = f"version {change.previous_version}" if change.previous_version else "no version"
    target = f"version {change.new_version}" if change.new_version else "no version"
    click.echo(
        f"Alias {change.alias!r} of model {change.model_name!r}: {source} -> {target} "
        f"({change.action.value})."
    )


@models_group.command("promote")
@click.argument("arguments", nargs=-1, metavar="[NAME] VERSION")
@_alias_option
@_reason_option
@click.option(
    "--force",
    is_flag=True,
    help="Promote an interrupted version too (its training stopped before the last epoch).",
)
@click.pass_obj
def promote_command(
    app, arguments: tuple[str, ...], alias: str, reason: str | None, force: bool
) -> None:
    """Point an alias (production by default) at VERSION after verifying and loading it."""
    name, version = _name_and_version(arguments)
    change = open_existing_registry(app).set_alias(
        name, alias, version, reason=reason, check_model=app.check_model, force=force
    )
    _echo_change(change)


@models_group.command("rollback")
@click.argument("model_name", metavar="[NAME]", required=False)
@_alias_option
@_reason_option
@click.pass_obj
def rollback_command(app, model_name: str | None, alias: str, reason: str | None) -> None:
    """Undo the last promotion of an alias; repeat to go further back in its history."""
    change = open_existing_registry(app).rollback(
        model_name, alias, reason=reason, check_model=app.check_model
    )
    _echo_change(change)


@models_group.command("unalias")
@click.argument("arguments", nargs=-1, metavar="[NAME] ALIAS")
@_reason_option
@click.pass_obj
def unalias_command(app, arguments: tuple[str, ...], reason: str | None) -> None:
    """Remove an alias from a model; `rollback` restores it."""
    if len(arguments) not in (1, 2):
        raise click.UsageError(f"expected [NAME] ALIAS, got {len(arguments)} arguments")
    name = arguments[0] if len(arguments) == 2 else None
    change = open_existing_registry(app).remove_alias(name, arguments[-1], reason=reason)
    _echo_change(change)


@models_group.command("history")
@click.argument("model_name", metavar="[NAME]", required=False)
@click.option("--alias", help="Only moves of this alias. Defaults to every alias.")
@click.pass_obj
def history_command(app, model_name: str | None, alias: str | None) -> None:
    """Show every alias move of a model with time, user and reason, oldest first."""
    changes = open_existing_registry(app).alias_history(model_name, alias)
    if not changes:
        click.echo("No alias has been set yet; promote a version with `sortbox models promote`.")
        return
    for line in format_table(*_history_table(changes)):
        click.echo(line)


@models_group.command("compare")
@click.argument("arguments", nargs=-1, metavar="[NAME] A B")
@click.pass_obj
def compare_command(app, arguments: tuple[str, ...]) -> None:
    """Show the summary and per-class metrics of versions A and B side by side."""
    name, (version_a, version_b) = _name_and_versions(arguments, 2)
    comparisons = open_existing_registry(app).compare_versions(name, version_a, version_b)
    if not comparisons:
        click.echo(f"Versions {version_a} and {version_b} have no summary metrics to compare.")
        return
    rows = []
    for item in comparisons:
        difference = None
        if item.value_a is not None and item.value_b is not None:
            difference = f"{item.value_b - item.value_a:+.4f}"
        rows.append(
            (
                item.split,
                item.name,
                item.class_name,
                format_number(item.value_a),
                format_number(item.value_b),
                difference,
            )
        )
    headers = ("SPLIT", "METRIC", "CLASS", f"V{version_a}", f"V{version_b}", "CHANGE")
    for line in format_table(headers, rows):
        click.echo(line)


@models_group.command("tag")
@click.argument("arguments", nargs=-1, metavar="[NAME] [VERSION] [KEY=VALUE]...")
@click.option("--remove", "remove_keys", multiple=True, metavar="KEY", help="Delete this tag (repeatable).")
@click.pass_obj
def tag_command(app, arguments: tuple[str, ...], remove_keys: tuple[str, ...]) -> None:
    """Set or remove tags on a version, or on the model itself when VERSION is left out."""
    name, version, tags = _parse_tag_arguments(arguments)
    if not tags and not remove_keys:
        raise click.UsageError("give at least one KEY=VALUE or --remove KEY")
    registry = open_existing_registry(app)
    if version is None:
        model = registry.set_model_tags(name, tags, remove_keys)
        target, updated = f"model {model.name!r}", model.tags
    else:
        model_version = registry.set_version_tags(name, version, tags, remove_keys)
        target = f"version {model_version.version} of model {model_version.model_name!r}"
        updated = model_version.tags
    shown = ", ".join(f"{key}={value}" for key, value in sorted(updated.items())) or "none"
    click.echo(f"Tags of {target}: {shown}")


def _parse_tag_arguments(arguments: tuple[str, ...]) -> tuple[str | None, int | None, dict[str, str]]:
    remaining = list(arguments)
    name = None
    version = None
    if remaining and "=" not in remaining[0] and not remaining[0].isdigit():
        name = remaining.pop(0)
    if remaining and "=" not in remaining[0]:
        version = _parse_version(remaining.pop(0))
    tags = {}
    for item in remaining:
        key, separator, value = item.partition("=")
        if not separator:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="KEY=VALUE")
        tags[key] = value
    return name, version, tags


@models_group.command("archive")
@click.argument("arguments", nargs=-1, metavar="[NAME] VERSION")
@click.pass_obj
def archive_command(app, arguments: tuple[str, ...]) -> None:
    """Mark a version archived so it cannot be promoted; refused while an alias points to it."""
    name, version = _name_and_version(arguments)
    archived = open_existing_registry(app).archive_version(name, version)
    click.echo(f"Archived version {archived.version} of model {archived.model_name!r}.")


@models_group.command("verify")
@click.argument("model_name", metavar="[NAME]", required=False)
@click.pass_obj
def verify_command(app, model_name: str | None) -> None:
    """Check every stored file against its sha256 and size; exit 1 when any fails."""
    checks = open_existing_registry(app).verify_artifacts(model_name)
    for check in checks:
        outcome = "ok" if check.ok else f"FAILED: {check.problem}"
        click.echo(f"{check.model_name} v{check.version} {check.kind} {check.path}: {outcome}")
    failed = [check for check in checks if not check.ok]
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(checks)} files failed verification; retrain those versions "
            "or restore the files from a backup"
        )
    click.echo(f"All {len(checks)} files match their checksums.")
