"""The model registry of the SQL store (mixed into ``SqlStore``).

Every write that depends on a model's current state (the next version number, who is in
Production, where an alias points) first locks the model's row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already lets one writer in at a time), so two processes
promoting two versions at once are applied one after the other: each sees the other's result,
and both moves reach the history.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from evalkit.entities import (
    ModelVersion,
    ModelVersionEvent,
    RegisteredModel,
    Run,
    Stage,
)
from evalkit.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound
from evalkit.tracking.clock import now_ms
from evalkit.tracking.registry import (
    MLFLOW_FLAVOR,
    Condition,
    check_description,
    evidence_problem,
    evidence_rule,
    parse_registry_filter,
    parse_registry_order,
    parse_stage,
    parse_version,
    validate_alias,
    validate_model_name,
)
from evalkit.tracking.request_scope import acting_user
from evalkit.tracking.sql import schema as t
from evalkit.tracking.sql.engine import write_transaction
from evalkit.tracking.store import decode_offset_token, encode_offset_token
from evalkit.tracking.validation import MAX_TAG_VALUE_LENGTH, stringify, validate_key

_MODEL_ORDER = {"name": "name", "creation_timestamp": "creation_time", "last_updated_timestamp": "last_update_time"}
_VERSION_ATTRIBUTES = ("name", "run_id", "bundle_hash", "current_stage", "source", "flavor")
_VERSION_ORDER = {"name": "name", "version": "version", "creation_timestamp": "creation_time",
                  "last_updated_timestamp": "last_update_time"}
STAGE_EVENT, ALIAS_EVENT, RULE_EVENT, DELETED_EVENT = "stage", "alias", "evidence_rule", "deleted"


def os_user() -> str | None:
    """Who acts: the token's user of a request the tracking server serves, else the
    operating-system user (a local store)."""
    if (user := acting_user.get()) is not None:
        return user
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers; the field is optional
        return None


class SqlRegistry:
    """The registry operations of ``TrackingStore`` on the SQL tables (see the module doc)."""

    engine: Engine

    # Provided by SqlStore: the run lookups an evidence check needs.
    def _require_run_row(self, conn: Connection, run_id: str) -> Any: ...  # pragma: no cover
    def _load_runs(self, conn: Connection, rows: Sequence[Any]) -> list[Run]: ...  # pragma: no cover

    # ---- registered models -------------------------------------------------------------------

    def create_registered_model(self, name: str, tags: dict[str, Any] | None = None, description: str | None = None,
                                evidence_required: Sequence[str] | None = None,
                                user: str | None = None) -> RegisteredModel:
        validate_model_name(name)
        tag_rows = _tag_rows(tags)
        text = check_description(description)
        rule = evidence_rule(evidence_required)

        def work(conn: Connection) -> None:
            if conn.execute(select(t.registered_models.c.model_id).where(t.registered_models.c.name == name)).first():
                raise AlreadyExists(f"a registered model named {name!r} already exists")
            ts = now_ms()
            model_id = conn.execute(insert(t.registered_models).values(
                name=name, creation_time=ts, last_update_time=ts, description=text,
                evidence_required=",".join(rule), next_version=1)).inserted_primary_key[0]
            if tag_rows:
                conn.execute(insert(t.registered_model_tags),
                             [{"model_id": model_id, "key": k, "value": v} for k, v in tag_rows.items()])
            if rule:
                _record(conn, model_id, RULE_EVENT, None, None, ",".join(rule), user, ts)

        try:
            write_transaction(self.engine, work)
        except IntegrityError:  # another process created the same name meanwhile
            raise AlreadyExists(f"a registered model named {name!r} already exists") from None
        return self.get_registered_model(name)

    def get_registered_model(self, name: str) -> RegisteredModel:
        with self.engine.connect() as conn:
            return self._load_model(conn, _model_row(conn, name))

    def search_registered_models(self, filter_string: str | None = None, max_results: int = 100,
                                 order_by: Sequence[str] | str | None = None,
                                 page_token: str | None = None) -> tuple[list[RegisteredModel], str | None]:
        _check_max_results(max_results)
        conditions = parse_registry_filter(filter_string, ["name"])
        orders = parse_registry_order(order_by, list(_MODEL_ORDER))
        offset = decode_offset_token(page_token)
        m = t.registered_models.c
        query = select(t.registered_models).where(*[_model_condition(c) for c in conditions])
        sort = [getattr(m, _MODEL_ORDER[key]).asc() if ascending else getattr(m, _MODEL_ORDER[key]).desc()
                for key, ascending in orders]
        query = query.order_by(*sort, m.name).limit(max_results + 1).offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            models = [self._load_model(conn, row) for row in rows[:max_results]]
        return models, encode_offset_token(offset + max_results) if len(rows) > max_results else None

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        validate_model_name(new_name)

        def work(conn: Connection) -> None:
            row = _model_row(conn, name, lock=True)
            if conn.execute(select(t.registered_models.c.model_id).where(
                    t.registered_models.c.name == new_name, t.registered_models.c.model_id != row.model_id)).first():
                raise AlreadyExists(f"a registered model named {new_name!r} already exists")
            conn.execute(update(t.registered_models).where(t.registered_models.c.model_id == row.model_id)
                         .values(name=new_name, last_update_time=now_ms()))

        try:
            write_transaction(self.engine, work)
        except IntegrityError:
            raise AlreadyExists(f"a registered model named {new_name!r} already exists") from None
        return self.get_registered_model(new_name)

    def update_registered_model(self, name: str, description: str | None = None,
                                evidence_required: Sequence[str] | None = None,
                                user: str | None = None) -> RegisteredModel:
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = check_description(description)
        rule = None if evidence_required is None else ",".join(evidence_rule(evidence_required))

        def work(conn: Connection) -> None:
            row = _model_row(conn, name, lock=True)
            ts = now_ms()
            if rule is not None and rule != row.evidence_required:
                values["evidence_required"] = rule
                _record(conn, row.model_id, RULE_EVENT, None, row.evidence_required or None, rule or None, user, ts)
            conn.execute(update(t.registered_models).where(t.registered_models.c.model_id == row.model_id)
                         .values(**values, last_update_time=ts))

        write_transaction(self.engine, work)
        return self.get_registered_model(name)

    def delete_registered_model(self, name: str) -> None:
        def work(conn: Connection) -> None:
            model_id = _model_row(conn, name, lock=True).model_id
            for table in (t.model_version_tags, t.model_aliases, t.model_versions, t.registered_model_tags):
                conn.execute(delete(table).where(table.c.model_id == model_id))
            conn.execute(delete(t.registered_models).where(t.registered_models.c.model_id == model_id))

        write_transaction(self.engine, work)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        (key, text), = _tag_rows({key: value}).items()

        def work(conn: Connection) -> None:
            model_id = _model_row(conn, name).model_id
            _replace(conn, t.registered_model_tags, {"model_id": model_id, "key": key}, {"value": text})

        write_transaction(self.engine, work)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        def work(conn: Connection) -> None:
            table = t.registered_model_tags
            model_id = _model_row(conn, name).model_id
            if not conn.execute(delete(table).where(table.c.model_id == model_id, table.c.key == key)).rowcount:
                raise NotFound(f"registered model {name!r} has no tag {key!r}")

        write_transaction(self.engine, work)

    # ---- versions ----------------------------------------------------------------------------

    def create_model_version(self, name: str, source: str, bundle_hash: str, flavor: str, run_id: str | None = None,
                             tags: dict[str, Any] | None = None, description: str | None = None,
                             user: str | None = None) -> ModelVersion:
        if not isinstance(source, str) or not source:
            raise InvalidArgument(f"model version source must be a non-empty URI, got {source!r}")
        if not isinstance(bundle_hash, str) or len(bundle_hash) != 64:
            raise InvalidArgument(f"bundle_hash must be the 64-hex sha256 of a bundle, got {bundle_hash!r}")
        if not isinstance(flavor, str) or not flavor:
            raise InvalidArgument(f"flavor must be a flavor name such as 'llm', got {flavor!r}")
        tag_rows = _tag_rows(tags)
        text = check_description(description)

        def work(conn: Connection) -> int:
            model = _model_row(conn, name, lock=True)
            if run_id is not None:
                self._require_run_row(conn, run_id)
            number, ts = model.next_version, now_ms()
            conn.execute(insert(t.model_versions).values(
                model_id=model.model_id, version=number, creation_time=ts, last_update_time=ts, description=text,
                current_stage=Stage.NONE.value, source=source, run_id=run_id, bundle_hash=bundle_hash, flavor=flavor,
                user_id=user or os_user(), status="READY"))
            if tag_rows:
                conn.execute(insert(t.model_version_tags), [
                    {"model_id": model.model_id, "version": number, "key": k, "value": v} for k, v in tag_rows.items()])
            conn.execute(update(t.registered_models).where(t.registered_models.c.model_id == model.model_id)
                         .values(next_version=number + 1, last_update_time=ts))
            return number

        return self.get_model_version(name, write_transaction(self.engine, work))

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        number = parse_version(version)
        with self.engine.connect() as conn:
            model = _model_row(conn, name)
            return self._load_versions(conn, model, [_version_row(conn, model, number)])[0]

    def update_model_version(self, name: str, version: int | str, description: str) -> ModelVersion:
        number, text = parse_version(version), check_description(description)

        def work(conn: Connection) -> None:
            model = _model_row(conn, name)
            _version_row(conn, model, number)
            v = t.model_versions.c
            conn.execute(update(t.model_versions).where(v.model_id == model.model_id, v.version == number)
                         .values(description=text, last_update_time=now_ms()))

        write_transaction(self.engine, work)
        return self.get_model_version(name, number)

    def delete_model_version(self, name: str, version: int | str, user: str | None = None) -> None:
        number = parse_version(version)

        def work(conn: Connection) -> None:
            model = _model_row(conn, name, lock=True)
            row = _version_row(conn, model, number)
            ts = now_ms()
            a = t.model_aliases.c
            for alias in conn.execute(select(a.alias).where(a.model_id == model.model_id, a.version == number)):
                _record(conn, model.model_id, ALIAS_EVENT, number, str(number), None, user, ts, alias=alias.alias)
            _record(conn, model.model_id, DELETED_EVENT, number, row.current_stage, None, user, ts)
            conn.execute(delete(t.model_aliases).where(a.model_id == model.model_id, a.version == number))
            for table in (t.model_version_tags, t.model_versions):
                conn.execute(delete(table).where(table.c.model_id == model.model_id, table.c.version == number))

        write_transaction(self.engine, work)

    def set_model_version_tag(self, name: str, version: int | str, key: str, value: Any) -> None:
        number = parse_version(version)
        (key, text), = _tag_rows({key: value}).items()

        def work(conn: Connection) -> None:
            model = _model_row(conn, name)
            _version_row(conn, model, number)
            _replace(conn, t.model_version_tags, {"model_id": model.model_id, "version": number, "key": key},
                     {"value": text})

        write_transaction(self.engine, work)

    def delete_model_version_tag(self, name: str, version: int | str, key: str) -> None:
        number = parse_version(version)

        def work(conn: Connection) -> None:
            model = _model_row(conn, name)
            _version_row(conn, model, number)
            table = t.model_version_tags
            if not conn.execute(delete(table).where(table.c.model_id == model.model_id, table.c.version == number,
                                                    table.c.key == key)).rowcount:
                raise NotFound(f"version {number} of registered model {name!r} has no tag {key!r}")

        write_transaction(self.engine, work)

    def search_model_versions(self, filter_string: str | None = None, max_results: int = 1000,
                              order_by: Sequence[str] | str | None = None) -> list[ModelVersion]:
        _check_max_results(max_results)
        conditions = parse_registry_filter(filter_string, _VERSION_ATTRIBUTES)
        orders = parse_registry_order(order_by, list(_VERSION_ORDER)) or [("creation_timestamp", False)]
        v, m = t.model_versions.c, t.registered_models.c
        joined = t.model_versions.join(t.registered_models, v.model_id == m.model_id)
        query = select(t.model_versions, m.name).select_from(joined).where(
            *[_version_condition(c) for c in conditions])
        columns = {"name": m.name, "version": v.version, "creation_timestamp": v.creation_time,
                   "last_updated_timestamp": v.last_update_time}
        sort = [columns[key].asc() if ascending else columns[key].desc() for key, ascending in orders]
        query = query.order_by(*sort, v.model_id, v.version.desc()).limit(max_results)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            found = []
            for row in rows:
                model = conn.execute(select(t.registered_models).where(m.model_id == row.model_id)).one()
                found.extend(self._load_versions(conn, model, [row]))
        return found

    # ---- stages and aliases ------------------------------------------------------------------

    def transition_model_version_stage(self, name: str, version: int | str, stage: Stage | str,
                                       archive_existing_versions: bool = False, evidence_run_id: str | None = None,
                                       user: str | None = None) -> ModelVersion:
        number, target = parse_version(version), parse_stage(stage)
        if archive_existing_versions and target not in (Stage.STAGING, Stage.PRODUCTION):
            raise InvalidArgument(f"archive_existing_versions applies to Staging and Production, not {target.value}")

        def work(conn: Connection) -> None:
            model = _model_row(conn, name, lock=True)
            row = _version_row(conn, model, number)
            self._check_evidence(conn, model, row, target.value, evidence_run_id)
            ts, v = now_ms(), t.model_versions.c
            if archive_existing_versions:
                others = conn.execute(select(v.version).where(
                    v.model_id == model.model_id, v.current_stage == target.value, v.version != number)).all()
                for other in others:
                    conn.execute(update(t.model_versions).where(v.model_id == model.model_id,
                                                                v.version == other.version)
                                 .values(current_stage=Stage.ARCHIVED.value, last_update_time=ts))
                    _record(conn, model.model_id, STAGE_EVENT, other.version, target.value, Stage.ARCHIVED.value,
                            user, ts, evidence=evidence_run_id)
            if row.current_stage != target.value:
                conn.execute(update(t.model_versions).where(v.model_id == model.model_id, v.version == number)
                             .values(current_stage=target.value, last_update_time=ts))
                _record(conn, model.model_id, STAGE_EVENT, number, row.current_stage, target.value, user, ts,
                        evidence=evidence_run_id)

        write_transaction(self.engine, work)
        return self.get_model_version(name, number)

    def get_latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        if isinstance(stages, str):
            stages = [stages]
        wanted = [parse_stage(s).value for s in stages] if stages else [s.value for s in Stage]
        v = t.model_versions.c
        with self.engine.connect() as conn:
            model = _model_row(conn, name)
            rows = []
            for stage in wanted:
                row = conn.execute(select(t.model_versions).where(v.model_id == model.model_id, v.current_stage == stage)
                                   .order_by(v.version.desc()).limit(1)).first()
                if row is not None:
                    rows.append(row)
            return self._load_versions(conn, model, rows)

    def set_registered_model_alias(self, name: str, alias: str, version: int | str,
                                   evidence_run_id: str | None = None, user: str | None = None) -> None:
        validate_alias(alias)
        number = parse_version(version)

        def work(conn: Connection) -> None:
            model = _model_row(conn, name, lock=True)
            row = _version_row(conn, model, number)
            self._check_evidence(conn, model, row, f"@{alias}", evidence_run_id)
            a = t.model_aliases.c
            current = conn.execute(select(a.version).where(a.model_id == model.model_id, a.alias == alias)).first()
            if current is not None and current.version == number:
                return
            _replace(conn, t.model_aliases, {"model_id": model.model_id, "alias": alias}, {"version": number})
            _record(conn, model.model_id, ALIAS_EVENT, number, None if current is None else str(current.version),
                    str(number), user, now_ms(), alias=alias, evidence=evidence_run_id)

        write_transaction(self.engine, work)

    def delete_registered_model_alias(self, name: str, alias: str, user: str | None = None) -> None:
        def work(conn: Connection) -> None:
            model = _model_row(conn, name, lock=True)
            a = t.model_aliases.c
            current = conn.execute(select(a.version).where(a.model_id == model.model_id, a.alias == alias)).first()
            if current is None:
                raise NotFound(f"registered model {name!r} has no alias {alias!r}")
            conn.execute(delete(t.model_aliases).where(a.model_id == model.model_id, a.alias == alias))
            _record(conn, model.model_id, ALIAS_EVENT, current.version, str(current.version), None, user, now_ms(),
                    alias=alias)

        write_transaction(self.engine, work)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        a = t.model_aliases.c
        with self.engine.connect() as conn:
            model = _model_row(conn, name)
            current = conn.execute(select(a.version).where(a.model_id == model.model_id, a.alias == alias)).first()
            if current is None:
                known = [r.alias for r in conn.execute(select(a.alias).where(a.model_id == model.model_id))]
                raise NotFound(f"registered model {name!r} has no alias {alias!r}"
                               + (f" (its aliases: {', '.join(sorted(known))})" if known else " (it has no aliases)"))
            return self._load_versions(conn, model, [_version_row(conn, model, current.version)])[0]

    def get_model_version_history(self, name: str, version: int | str | None = None) -> list[ModelVersionEvent]:
        number = None if version is None else parse_version(version)
        h = t.model_history.c
        with self.engine.connect() as conn:
            model = _model_row(conn, name)
            rows = conn.execute(select(t.model_history).where(h.model_id == model.model_id).order_by(h.id)).all()
        events = [ModelVersionEvent(model.name, r.kind, r.version, r.from_value, r.to_value, r.timestamp, r.user_id,
                                    r.alias, r.evidence_run_id) for r in rows]
        if number is None:
            return events
        mentioned = str(number)
        return [e for e in events if e.version == number
                or (e.kind == ALIAS_EVENT and mentioned in (e.from_value, e.to_value))]

    # ---- helpers -----------------------------------------------------------------------------

    def _check_evidence(self, conn: Connection, model: Any, row: Any, target: str, evidence_run_id: str | None) -> None:
        """Refuse a move to ``target`` that the model's rule says needs evidence, unless the
        evidence run holds (an evidence run named for any move is checked too: what is recorded
        as evidence must be evidence)."""
        required = target in model.evidence_required.split(",")
        where = f"moving {model.name!r} version {row.version} to {target}"
        if row.flavor == MLFLOW_FLAVOR and (required or evidence_run_id is not None):
            raise InvalidState(
                f"{where} refused: it is an MLflow model (flavor {MLFLOW_FLAVOR}), not an evalkit bundle, so no "
                f"suite run is evidence for it; the model's evidence rule guards {target}")
        if evidence_run_id is None:
            if required:
                raise InvalidState(
                    f"{where} requires evidence: name a FINISHED run of the nightly job whose gates passed on this "
                    f"version (evidence_run_id=...), or run: evalkit models promote {model.name} {row.version} "
                    f"--to {target} --suite <suite file>")
            return
        if not isinstance(evidence_run_id, str):
            raise InvalidArgument(f"evidence_run_id must be a run id, got {evidence_run_id!r}")
        try:
            run_row = self._require_run_row(conn, evidence_run_id)
        except NotFound:
            raise NotFound(f"{where}: the evidence run {evidence_run_id!r} does not exist") from None
        run = self._load_runs(conn, [run_row])[0]
        children = self._load_runs(conn, conn.execute(select(t.runs).where(t.runs.c.parent_run_id == evidence_run_id))
                                   .all())
        problem = evidence_problem(run, children, row.bundle_hash)
        if problem:
            raise InvalidState(f"{where} refused: {problem}")

    def _load_model(self, conn: Connection, row: Any) -> RegisteredModel:
        tg, a, v = t.registered_model_tags.c, t.model_aliases.c, t.model_versions.c
        tags = {r.key: r.value for r in conn.execute(select(tg.key, tg.value).where(tg.model_id == row.model_id))}
        aliases = {r.alias: r.version for r in conn.execute(select(a.alias, a.version).where(a.model_id == row.model_id))}
        latest = []
        for stage in Stage:
            newest = conn.execute(select(t.model_versions).where(v.model_id == row.model_id, v.current_stage == stage.value)
                                  .order_by(v.version.desc()).limit(1)).first()
            if newest is not None:
                latest.append(newest)
        return RegisteredModel(row.name, row.creation_time, row.last_update_time, row.description, tags,
                               dict(sorted(aliases.items())), self._load_versions(conn, row, latest),
                               [x for x in row.evidence_required.split(",") if x])

    def _load_versions(self, conn: Connection, model: Any, rows: Sequence[Any]) -> list[ModelVersion]:
        numbers = [r.version for r in rows]
        tg, a = t.model_version_tags.c, t.model_aliases.c
        tags: dict[int, dict[str, str]] = {n: {} for n in numbers}
        aliases: dict[int, list[str]] = {n: [] for n in numbers}
        for r in conn.execute(select(tg.version, tg.key, tg.value).where(tg.model_id == model.model_id,
                                                                         tg.version.in_(numbers))):
            tags[r.version][r.key] = r.value
        for r in conn.execute(select(a.version, a.alias).where(a.model_id == model.model_id, a.version.in_(numbers))
                              .order_by(a.alias)):
            aliases[r.version].append(r.alias)
        return [ModelVersion(model.name, r.version, r.creation_time, r.last_update_time, r.current_stage, r.source,
                             r.run_id, r.bundle_hash, r.flavor, r.description, r.user_id, r.status, tags[r.version],
                             aliases[r.version]) for r in rows]


def _model_row(conn: Connection, name: str, lock: bool = False) -> Any:
    if not isinstance(name, str):
        raise InvalidArgument(f"registered model name must be a string, got {name!r}")
    query = select(t.registered_models).where(t.registered_models.c.name == name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"no registered model named {name!r}")
    return row


def _version_row(conn: Connection, model: Any, number: int) -> Any:
    v = t.model_versions.c
    row = conn.execute(select(t.model_versions).where(v.model_id == model.model_id, v.version == number)).first()
    if row is None:
        known = [r.version for r in conn.execute(select(v.version).where(v.model_id == model.model_id)
                                                 .order_by(v.version))]
        listed = f"its versions: {', '.join(map(str, known))}" if known else "it has no versions"
        raise NotFound(f"registered model {model.name!r} has no version {number} ({listed})")
    return row


def _record(conn: Connection, model_id: int, kind: str, version: int | None, before: str | None, after: str | None,
            user: str | None, ts: int, alias: str | None = None, evidence: str | None = None) -> None:
    conn.execute(insert(t.model_history).values(
        model_id=model_id, kind=kind, version=version, alias=alias, from_value=before, to_value=after, timestamp=ts,
        user_id=user or os_user(), evidence_run_id=evidence))


def _replace(conn: Connection, table: Any, key: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert or update the row ``key`` names (the caller holds the write lock)."""
    condition = and_(*[table.c[k] == v for k, v in key.items()])
    if not conn.execute(update(table).where(condition).values(**values)).rowcount:
        conn.execute(insert(table).values(**key, **values))


def _tag_rows(tags: dict[str, Any] | None) -> dict[str, str]:
    if tags is not None and not isinstance(tags, dict):
        raise InvalidArgument(f"tags must be a dict of key to value, got {type(tags).__name__}")
    return {validate_key("tag", k): stringify("tag", k, v, MAX_TAG_VALUE_LENGTH) for k, v in (tags or {}).items()}


def _check_max_results(max_results: int) -> None:
    if not isinstance(max_results, int) or isinstance(max_results, bool) or not 0 < max_results <= 50_000:
        raise InvalidArgument(f"max_results must be an integer from 1 to 50000, got {max_results!r}")


def _like(column: Any, condition: Condition) -> Any:
    if condition.op == "=":
        return column == condition.value
    if condition.op == "!=":
        return column != condition.value
    if condition.op == "LIKE":
        return column.like(condition.value)
    return column.ilike(condition.value)


def _model_condition(condition: Condition) -> Any:
    m = t.registered_models.c
    if condition.key.startswith("tags."):
        tg = t.registered_model_tags.c
        if condition.op == "!=":  # a model without the tag is not equal to the value either
            return ~exists().where(tg.model_id == m.model_id, tg.key == condition.key[5:], tg.value == condition.value)
        return exists().where(tg.model_id == m.model_id, tg.key == condition.key[5:], _like(tg.value, condition))
    return _like(m.name, condition)


def _version_condition(condition: Condition) -> Any:
    v = t.model_versions.c
    if condition.key.startswith("tags."):
        tg = t.model_version_tags.c
        if condition.op == "!=":  # a version without the tag is not equal to the value either
            return ~exists().where(tg.model_id == v.model_id, tg.version == v.version, tg.key == condition.key[5:],
                                   tg.value == condition.value)
        return exists().where(tg.model_id == v.model_id, tg.version == v.version, tg.key == condition.key[5:],
                              _like(tg.value, condition))
    if condition.key == "name":
        return _like(t.registered_models.c.name, condition)
    if condition.key == "current_stage" and condition.op in ("=", "!="):
        condition = Condition(condition.key, condition.op, parse_stage(condition.value).value)
    return _like(getattr(v, condition.key), condition)
