"""Composition root of the `sortbox` command line.

Each package keeps its click commands in its own `commands.py`. This module only builds the
shared context, mounts those commands and turns every domain error into one "Error: ..." line.
None of the imported modules imports TensorFlow at import time, so `sortbox --help` and the
registry commands start fast.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from daemon.commands import status_command, watch_command
from daemon.errors import DaemonError
from registry.commands import db_group, models_group, predictions_group
from registry.errors import RegistryError
from trainer.commands import train_group
from trainer.errors import TrainerError
from vision.errors import VisionError

logger = logging.getLogger(__name__)

DOMAIN_ERRORS = (RegistryError, TrainerError, DaemonError, VisionError)


@dataclass
class AppContext:
    """Global options shared by every command, with the registry opened on first use.

    Commands reach it as `ctx.obj` and call `open_registry()`. Promotion (`models promote`,
    `models rollback`, `train --promote`) gets the model checker from here, so `registry/` never
    imports code of ours.
    """

    db_url: str | None
    home: Path | None
    _registry: object | None = field(default=None, repr=False)

    def open_registry(self, *, create: bool = True):
        """Open the registry once per command, applying pending migrations on first use.

        Args:
            create: Create the database when it does not exist yet. Commands that only read pass
                False, so a mistyped --home or --db fails instead of making an empty registry.
                Defaults to True.
        """
        if self._registry is None:
            from registry import Registry

            self._registry = Registry.open(url=self.db_url, home=self.home, create=create)
        return self._registry

    def check_model(self, path: str, class_count: int) -> None:
        """Load a model artifact and check that it has one output per class.

        Promotion calls this through the registry, which must not import Keras itself.
        """
        from vision.inference import check_model

        check_model(path, class_count)

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None


class SortboxGroup(click.Group):
    """Top-level group that reports domain errors as click errors: exit 1, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DOMAIN_ERRORS as error:
            logger.debug("command failed", exc_info=True)
            raise click.ClickException(str(error)) from error
        except OSError as error:
            # A full disk or a vanished folder while writing output is the user's to fix, so it
            # gets one line too; -vv still logs the traceback.
            logger.debug("command failed", exc_info=True)
            raise click.ClickException(describe_os_error(error)) from error


def describe_os_error(error: OSError) -> str:
    """Turn an operating-system error into one line naming the file and what to do."""
    reason = error.strerror or str(error)
    if error.filename is None:
        return f"{reason}; check free disk space and permissions, then run the command again"
    return (
        f"cannot use {os.fsdecode(error.filename)!r}: {reason}; check free disk space and "
        "permissions, then run the command again"
    )


def configure_logging(verbosity: int) -> None:
    """Send diagnostics to stderr; results stay on stdout."""
    level = logging.WARNING
    if verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    # TensorFlow's C++ logs drown sortbox's own at INFO; keep them to errors unless asked.
    if verbosity < 2:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group(cls=SortboxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_url",
    envvar="SORTBOX_DB",
    help="SQLAlchemy database URL. Defaults to SQLite at $SORTBOX_HOME/sortbox.db.",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SORTBOX_HOME",
    help="Data folder for the database, artifacts and caches. Defaults to ./sortbox-data.",
)
@click.option("-v", "--verbose", count=True, help="Log more: -v for progress, -vv for debugging.")
@click.version_option(package_name="sortbox")
@click.pass_context
def sortbox(ctx: click.Context, db_url: str | None, home: Path | None, verbose: int) -> None:
    """Train image classifiers, manage their versions and sort incoming images."""
    configure_logging(verbose)
    app = AppContext(db_url=db_url, home=home)
    ctx.obj = app
    ctx.call_on_close(app.close)


sortbox.add_command(train_group)
sortbox.add_command(models_group)
sortbox.add_command(predictions_group)
sortbox.add_command(db_group)
sortbox.add_command(watch_command)
sortbox.add_command(status_command)


def main() -> None:
    """Console-script entry point."""
    sortbox(prog_name="sortbox")


if __name__ == "__main__":
    main()
