"""`sortbox predictions ...`: list, show, export and count what the daemon predicted."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone

import click

from registry.command_support import open_existing_registry
from registry.exports import EXPORT_FORMATS, prediction_record
from registry.formatting import format_number, format_table, format_text, format_time
from registry.textpaths import encode_path
from registry.types import PredictionFilter, PredictionStatus

DEFAULT_LIST_LIMIT = 50


class IsoTime(click.ParamType):
    """An ISO 8601 time such as 2024-05-01T12:00; without an offset it is taken as UTC."""

    name = "ISO_TIME"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                self.fail(f"{value!r} is not an ISO 8601 time such as 2024-05-01T12:00", param, ctx)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment


def filter_options(default_limit: int | None, *, ordered: bool = True):
    """Add the prediction filter options to a command and pass a `PredictionFilter` as `conditions`.

    Args:
        default_limit: Default of --limit; None means every row.
        ordered: Add --limit and --oldest-first. Commands whose result does not depend on row
            order, such as counts, pass False. Defaults to True.
    """

    def decorate(command):
        options = [
            click.option("--category", help="Only this predicted category."),
            click.option("--model", "model_name", help="Only predictions of this registered model."),
            click.option(
                "--model-version",
                type=click.IntRange(min=1),
                help="Only this version number (of --model, or of the only registered model).",
            ),
            click.option(
                "--status",
                type=click.Choice([status.value for status in PredictionStatus]),
                help="Only this outcome.",
            ),
            click.option("--since", type=IsoTime(), help="From this time on (ISO 8601, UTC by default)."),
            click.option("--until", type=IsoTime(), help="Before this time (ISO 8601, UTC by default)."),
            click.option(
                "--confidence-below",
                type=click.FloatRange(0, 1),
                help="Only predictions whose top probability is below this value (0 to 1).",
            ),
            click.option("--name", "name_glob", help="Only file names matching this glob, e.g. '*.jpg'."),
        ]
        if ordered:
            options += _ordering_options(default_limit)
        for option in reversed(options):
            command = option(command)

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            kwargs["conditions"] = PredictionFilter(
                category=kwargs.pop("category"),
                model_name=kwargs.pop("model_name"),
                model_version=kwargs.pop("model_version"),
                status=_status(kwargs.pop("status")),
                since=kwargs.pop("since"),
                until=kwargs.pop("until"),
                confidence_below=kwargs.pop("confidence_below"),
                name_glob=kwargs.pop("name_glob"),
                limit=kwargs.pop("limit", None),
                newest_first=not kwargs.pop("oldest_first", False),
            )
            return command(*args, **kwargs)

        return wrapper

    return decorate


def _ordering_options(default_limit: int | None) -> list:
    return [
        click.option(
            "--limit",
            type=click.IntRange(min=0),
            default=default_limit,
            show_default=default_limit is not None,
            help="Stop after this many rows." + ("" if default_limit else " Defaults to all."),
        ),
        click.option("--oldest-first", is_flag=True, help="Order oldest first instead of newest first."),
    ]


def _status(value: str | None) -> PredictionStatus | None:
    return PredictionStatus(value) if value is not None else None


@click.group("predictions")
def predictions_group() -> None:
    """Query the predictions the daemon stored."""


@predictions_group.command("list")
@filter_options(default_limit=DEFAULT_LIST_LIMIT)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.pass_obj
def list_command(app, conditions: PredictionFilter, output_format: str) -> None:
    """List predictions, newest first; use csv or json (or `export`) for large results."""
    registry = open_existing_registry(app)
    if output_format == "csv":
        with click.open_file("-", "wb") as stdout:
            registry.export_predictions(conditions, "csv", stdout)
        return
    predictions = registry.query_predictions(conditions)
    if output_format == "json":
        _echo_json_array(predictions)
        return

    headers = ("ID", "CREATED", "STATUS", "MODEL", "CATEGORY", "CONFIDENCE", "FILE")
    rows = [
        (
            prediction.id,
            format_time(prediction.created_at),
            prediction.status.value,
            f"{prediction.model_name} v{prediction.model_version}" if prediction.model_name else None,
            prediction.category,
            format_number(prediction.confidence),
            encode_path(prediction.file_name),
        )
        for prediction in predictions
    ]
    if not rows:
        click.echo("No predictions match.")
        return
    for line in format_table(headers, rows):
        click.echo(line)


def _echo_json_array(predictions) -> None:
    # One element per line, written as rows arrive, so large results never sit in memory.
    click.echo("[", nl=False)
    separator = "\n"
    for prediction in predictions:
        click.echo(separator + json.dumps(prediction_record(prediction), ensure_ascii=True), nl=False)
        separator = ",\n"
    click.echo("\n]")


@predictions_group.command("show")
@click.argument("prediction_id", type=click.IntRange(min=1), metavar="ID")
@click.pass_obj
def show_command(app, prediction_id: int) -> None:
    """Show every stored field of one prediction."""
    prediction = open_existing_registry(app).get_prediction(prediction_id)
    record = prediction_record(prediction)
    record["top_k"] = ", ".join(f"{category} {probability:.4f}" for category, probability in prediction.top_k)
    width = max(len(key) for key in record)
    for key, value in record.items():
        click.echo(f"{key.ljust(width)}  {format_text(value)}")


@predictions_group.command("export")
@filter_options(default_limit=None)
@click.option(
    "--format",
    "export_format",
    type=click.Choice(EXPORT_FORMATS),
    default="csv",
    show_default=True,
    help="csv (UTF-8, header row) or jsonl (one JSON object per line, ASCII).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(allow_dash=True),
    default="-",
    help="File to write; it is replaced only when the export is complete. Defaults to stdout.",
)
@click.pass_obj
def export_command(app, conditions: PredictionFilter, export_format: str, output: str) -> None:
    """Stream every matching prediction as CSV or JSON Lines, in constant memory.

    File names that are not valid UTF-8 are written as `fsbytes:` followed by their
    percent-encoded bytes, such as `fsbytes:%FF.jpg`.
    """
    registry = open_existing_registry(app)
    if output == "-":
        with click.open_file("-", "wb") as stdout:
            count = registry.export_predictions(conditions, export_format, stdout)
    else:
        count = registry.export_predictions_to_file(conditions, export_format, output)
    noun = "prediction" if count == 1 else "predictions"
    click.echo(f"Exported {count} {noun}.", err=True)


@predictions_group.command("stats")
@filter_options(default_limit=None, ordered=False)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.pass_obj
def stats_command(app, conditions: PredictionFilter, output_format: str) -> None:
    """Count predictions per model version and category, and per hour (UTC)."""
    stats = open_existing_registry(app).prediction_stats(conditions)
    if output_format == "json":
        click.echo(json.dumps(_stats_record(stats), indent=2))
        return

    click.echo(f"Total: {stats.total}")
    if not stats.total:
        return
    click.echo("")
    category_rows = [
        (
            f"{item.model_name} v{item.model_version}" if item.model_name else None,
            item.category,
            item.status.value if item.status else None,
            item.count,
        )
        for item in stats.by_category
    ]
    for line in format_table(("MODEL", "CATEGORY", "STATUS", "COUNT"), category_rows):
        click.echo(line)
    click.echo("")
    hour_rows = [(item.hour.strftime("%Y-%m-%d %H:00Z"), item.count) for item in stats.by_hour]
    for line in format_table(("HOUR", "COUNT"), hour_rows):
        click.echo(line)


def _stats_record(stats) -> dict:
    return {
        "total": stats.total,
        "by_category": [
            {
                "model_name": item.model_name,
                "model_version": item.model_version,
                "category": item.category,
                "status": item.status.value if item.status else None,
                "count": item.count,
            }
            for item in stats.by_category
        ],
        "by_hour": [
            {"hour": item.hour.isoformat(), "count": item.count} for item in stats.by_hour
        ],
    }
