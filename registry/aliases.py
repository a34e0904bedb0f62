"""Aliases such as `production`: promotion with checks, rollback and the append-only history.

Rollback undoes promotions one at a time, newest first. The alias history is read as a stack:
each promotion or removal pushes the version that held the alias before it, and each rollback
pops one. So after promoting v1, v2 and v3, a first rollback returns to v2, a second to v1, and a
third is rejected because v1 was the first holder. A promotion after a rollback pushes again, so a
rollback right after it undoes that promotion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from registry import lookups
from registry.checksums import find_problem
from registry.convert import to_alias_change, to_model_version
from registry.database import Database
from registry.errors import ArtifactError, ConflictError, NotFoundError
from registry.orm import SqlAlias, SqlAliasChange, SqlModelVersion, SqlRegisteredModel, utc_now
from registry.types import PRODUCTION, AliasAction, AliasChange, ModelVersion, VersionStatus
from registry.versions import current_user

logger = logging.getLogger(__name__)

# Loads a model file and checks it has `class_count` outputs; raises when it does not.
ModelCheck = Callable[[str, int], None]

_UNPROMOTABLE = {VersionStatus.ARCHIVED, VersionStatus.FAILED}


class AliasesMixin:
    """Methods of `Registry` that read and move aliases; `get_version` comes from VersionsMixin."""

    _db: Database
    get_version: Callable[[str, int], ModelVersion]
    resolve_model_name: Callable[[str | None], str]

    def get_alias(self, model_name: str, alias: str = PRODUCTION) -> ModelVersion | None:
        """Return the version that `alias` points to, or None when the alias is not set.

        Raises:
            NotFoundError: The model is not registered.
        """
        with self._db.session_scope(write=False) as session:
            model = lookups.model_row(session, model_name)
            row = lookups.alias_row(session, model, alias)
            if row is None:
                return None
            return to_model_version(lookups.version_row_by_id(session, row.version_id))

    def set_alias(
        self,
        model_name: str | None,
        alias: str,
        version: int,
        *,
        reason: str | None = None,
        user: str | None = None,
        check_model: ModelCheck | None = None,
        force: bool = False,
    ) -> AliasChange:
        """Point `alias` at a version after checking that the version can serve.

        The checks run before anything changes: the version is not archived or failed, nor
        interrupted unless `force` is set, its model file exists with the registered sha256, and
        `check_model(path, class_count)` passes when given.

        Args:
            force: Allow an interrupted version, whose training stopped before its last epoch.
                Defaults to False.

        Raises:
            ConflictError: The version is archived or failed, interrupted without `force`, or
                the alias already points to it.
            ArtifactError: The file is missing or changed, or `check_model` failed.
        """
        model_name = self.resolve_model_name(model_name)
        lookups.check_alias(alias)
        target = self.get_version(model_name, version)
        _check_promotable(target, alias, force=force)
        self._check_serves(target, check_model)

        with self._db.session_scope() as session:
            model = lookups.model_row(session, model_name)
            row = lookups.version_row(session, model_name, version)
            _check_promotable(to_model_version(row), alias, force=force)
            change = _move_alias(session, model, alias, row, AliasAction.SET, reason, user)
        logger.info("alias %s of model %s now points to version %s", alias, model_name, version)
        return change

    def rollback(
        self,
        model_name: str | None,
        alias: str = PRODUCTION,
        *,
        reason: str | None = None,
        user: str | None = None,
        check_model: ModelCheck | None = None,
    ) -> AliasChange:
        """Undo the newest promotion of `alias` that is not undone yet (see the module docstring).

        The version it returns to passes the same checks as a promotion, except that an
        interrupted version is allowed: it held the alias before, so it was promoted with force.

        Raises:
            ConflictError: Nothing is left to undo, or the alias moved while checking.
        """
        model_name = self.resolve_model_name(model_name)
        lookups.check_alias(alias)
        with self._db.session_scope(write=False) as session:
            model = lookups.model_row(session, model_name)
            target_id, last_change_id = _rollback_target(session, model, alias)
            target = to_model_version(lookups.version_row_by_id(session, target_id))
        _check_promotable(target, alias, force=True)
        self._check_serves(target, check_model)

        with self._db.session_scope() as session:
            model = lookups.model_row(session, model_name)
            if _rollback_target(session, model, alias) != (target_id, last_change_id):
                raise ConflictError(
                    f"alias {alias!r} of model {model_name!r} changed during the rollback; "
                    "check `sortbox models history` and run the rollback again"
                )
            row = lookups.version_row_by_id(session, target_id)
            change = _move_alias(session, model, alias, row, AliasAction.ROLLBACK, reason, user)
        logger.info("rolled alias %s of model %s back to version %s", alias, model_name, target.version)
        return change

    def remove_alias(
        self,
        model_name: str | None,
        alias: str,
        *,
        reason: str | None = None,
        user: str | None = None,
    ) -> AliasChange:
        """Delete an alias; a later rollback restores the version that held it.

        Raises:
            NotFoundError: The model has no such alias; the message lists the ones it has.
        """
        model_name = self.resolve_model_name(model_name)
        lookups.check_alias(alias)
        with self._db.session_scope() as session:
            model = lookups.model_row(session, model_name)
            if lookups.alias_row(session, model, alias) is None:
                raise NotFoundError(
                    f"model {model_name!r} has no alias {alias!r}; its aliases are "
                    f"{_alias_names(session, model)}; see `sortbox models list`"
                )
            change = _move_alias(session, model, alias, None, AliasAction.UNSET, reason, user)
        logger.info("removed alias %s of model %s", alias, model_name)
        return change

    def alias_history(self, model_name: str | None, alias: str | None = None) -> list[AliasChange]:
        """List alias moves of a model, oldest first; only those of `alias` when given."""
        model_name = self.resolve_model_name(model_name)
        with self._db.session_scope(write=False) as session:
            model = lookups.model_row(session, model_name)
            return [to_alias_change(row) for row in _history_rows(session, model, alias)]

    def verify_artifact(self, model_version: ModelVersion) -> None:
        """Check the version's model file against its registered size and sha256.

        Raises:
            ArtifactError: Naming the file and what differs.
        """
        problem = find_problem(
            model_version.artifact_uri, model_version.artifact_sha256, model_version.artifact_size
        )
        if problem is not None:
            raise ArtifactError(
                f"version {model_version.version} of model {model_version.model_name!r}: "
                f"{problem}; run `sortbox models verify` to check every file"
            )

    def _check_serves(self, target: ModelVersion, check_model: ModelCheck | None) -> None:
        self.verify_artifact(target)
        if check_model is None:
            return
        try:
            check_model(target.artifact_uri, len(target.class_names))
        # The checker is the caller's code (Keras loading), so any exception means "cannot serve".
        except Exception as error:
            # The checker's message already names the file and the fix.
            raise ArtifactError(
                f"version {target.version} of model {target.model_name!r} failed the load "
                f"check: {error}"
            ) from error


def _check_promotable(target: ModelVersion, alias: str, *, force: bool) -> None:
    if target.status in _UNPROMOTABLE:
        raise ConflictError(
            f"version {target.version} of model {target.model_name!r} is {target.status.value} "
            f"and cannot hold alias {alias!r}; promote a ready version"
        )
    if target.status == VersionStatus.INTERRUPTED and not force:
        raise ConflictError(
            f"version {target.version} of model {target.model_name!r} is interrupted: its "
            f"training stopped before the last epoch; promote a ready version, or pass --force "
            f"to give it alias {alias!r} anyway"
        )


def _alias_names(session: Session, model: SqlRegisteredModel) -> str:
    names = session.scalars(
        sa.select(SqlAlias.alias).where(SqlAlias.model_id == model.id).order_by(SqlAlias.alias)
    ).all()
    return ", ".join(names) if names else "none"


def _history_rows(session: Session, model: SqlRegisteredModel, alias: str | None) -> list[SqlAliasChange]:
    statement = (
        sa.select(SqlAliasChange)
        .where(SqlAliasChange.model_id == model.id)
        .order_by(SqlAliasChange.id)
        .options(
            selectinload(SqlAliasChange.model),
            selectinload(SqlAliasChange.previous_version),
            selectinload(SqlAliasChange.new_version),
        )
    )
    if alias is not None:
        statement = statement.where(SqlAliasChange.alias == alias)
    return list(session.scalars(statement))


def _rollback_target(session: Session, model: SqlRegisteredModel, alias: str) -> tuple[int, int]:
    """Return (version id to roll back to, id of the newest history row)."""
    rows = _history_rows(session, model, alias)
    undo_stack: list[int | None] = []
    for row in rows:
        if row.action == AliasAction.ROLLBACK:
            undo_stack.pop()
        else:
            undo_stack.append(row.previous_version_id)

    if not undo_stack:
        raise ConflictError(
            f"alias {alias!r} of model {model.name!r} has no promotion left to undo; "
            "see `sortbox models history` and promote a version by number instead"
        )
    target_id = undo_stack[-1]
    if target_id is None:
        raise ConflictError(
            f"alias {alias!r} of model {model.name!r} had no version before its last promotion, "
            "so there is nothing to roll back to; promote a version by number instead"
        )
    return target_id, rows[-1].id


def _move_alias(
    session: Session,
    model: SqlRegisteredModel,
    alias: str,
    target: SqlModelVersion | None,
    action: AliasAction,
    reason: str | None,
    user: str | None,
) -> AliasChange:
    current = lookups.alias_row(session, model, alias)
    previous_id = current.version_id if current is not None else None
    target_id = target.id if target is not None else None
    if previous_id == target_id:
        held = f"version {target.version}" if target is not None else "no version"
        raise ConflictError(
            f"alias {alias!r} of model {model.name!r} already points to {held}; nothing changed"
        )

    now = utc_now()
    if target is None:
        session.delete(current)
    elif current is None:
        session.add(SqlAlias(model_id=model.id, alias=alias, version_id=target_id, updated_at=now))
    else:
        current.version_id = target_id
        current.updated_at = now

    change = SqlAliasChange(
        model_id=model.id,
        alias=alias,
        action=action,
        previous_version_id=previous_id,
        new_version_id=target_id,
        changed_at=now,
        user=user if user is not None else current_user(),
        reason=reason,
    )
    session.add(change)
    session.flush()
    session.refresh(change)
    return to_alias_change(change)
