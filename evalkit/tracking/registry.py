"""The model registry's rules, shared by every store that holds one: names, versions, stages,
aliases, the evidence a promotion needs, and the small filter language of registry searches.

Every check happens before anything is written, so a refused call leaves the store unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from evalkit.entities import LifecycleStage, Run, RunStatus, Stage
from evalkit.errors import FilterSyntaxError, InvalidArgument
from evalkit.tracking import suite_tags

MAX_NAME_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 5000
# Params evaluate() logs when its model is a registered or logged bundle: what exactly it ran.
BUNDLE_HASH_PARAM = "model_bundle_hash"
REGISTERED_NAME_PARAM = "registered_model_name"
REGISTERED_VERSION_PARAM = "registered_model_version"
# The flavor of a version registered from an MLflow model (no evalkit bundle): it takes stages and
# aliases like any version, but never one the evidence rule guards (no suite evaluates it).
MLFLOW_FLAVOR = "mlflow"

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,254}$")
_VERSION_LIKE = re.compile(r"^[vV]?\d+$")
RESERVED_ALIASES = ("latest",)


def validate_model_name(name: object) -> str:
    """``name`` if it can name a registered model; it is written in ``models:/<name>/...`` URIs,
    so it holds no ``/`` or ``@`` and no leading or trailing space."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"registered model name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"registered model name {name[:40]!r}... is longer than {MAX_NAME_LENGTH} characters")
    if name != name.strip() or any(c in name for c in "/@") or any(ord(c) < 32 for c in name):
        raise InvalidArgument(
            f"registered model name {name!r} may not contain '/', '@', control characters, or start or end with "
            "a space (it is written in models:/<name>/<version> URIs)"
        )
    return name


def parse_version(version: object) -> int:
    """A version number (1, 2, ...) from an int or a string of digits."""
    if isinstance(version, bool):
        raise InvalidArgument(f"model version must be a positive integer, got {version!r}")
    if isinstance(version, int):
        number = version
    elif isinstance(version, str) and version.strip().isdigit():
        number = int(version.strip())
    else:
        raise InvalidArgument(f"model version must be a positive integer such as 3, got {version!r}")
    if number < 1:
        raise InvalidArgument(f"model versions count from 1, got {version!r}")
    return number


def parse_stage(stage: object) -> Stage:
    """The stage ``stage`` names, any case (``"production"``, ``"None"``)."""
    if isinstance(stage, Stage):
        return stage
    if isinstance(stage, str):
        for known in Stage:
            if known.value.lower() == stage.strip().lower():
                return known
    raise InvalidArgument(f"unknown stage {stage!r}: use one of {', '.join(s.value for s in Stage)}")


def validate_alias(alias: object) -> str:
    """``alias`` if it can name a version: letters, digits, ``_`` and ``-``, starting with a letter
    or ``_``; never a version number (``3``, ``v3``) or ``latest``, which ``models:/`` URIs read
    otherwise."""
    if not isinstance(alias, str) or not alias:
        raise InvalidArgument(f"alias must be a non-empty string, got {alias!r}")
    if _VERSION_LIKE.match(alias):
        raise InvalidArgument(
            f"alias {alias!r} looks like a version number; an alias is a name such as 'champion' "
            "(models:/<name>/<version> already names versions by number)"
        )
    if alias.lower() in RESERVED_ALIASES:
        raise InvalidArgument(f"alias {alias!r} is reserved")
    if not _ALIAS.match(alias):
        raise InvalidArgument(
            f"alias {alias!r} may hold only letters, digits, '_' and '-', start with a letter or '_', "
            "and be at most 255 characters"
        )
    return alias


def check_description(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidArgument(f"description must be a string of at most {MAX_DESCRIPTION_LENGTH} characters")
    return description


# ---- evidence ------------------------------------------------------------------------------


def evidence_rule(targets: Iterable[str] | None) -> list[str]:
    """The canonical list of promotion targets that need evidence: stage names (``Production``)
    and aliases written with ``@`` (``@champion``), each once, in the order given."""
    rule: list[str] = []
    if isinstance(targets, str):
        raise InvalidArgument(f"evidence_required is a list such as ['Production', '@champion'], got {targets!r}")
    for target in targets or ():
        if not isinstance(target, str):
            raise InvalidArgument(f"evidence_required holds stage names and @aliases, got {target!r}")
        if target.startswith("@"):
            canonical = "@" + validate_alias(target[1:])
        else:
            stage = parse_stage(target)
            if stage is Stage.NONE:
                raise InvalidArgument("evidence cannot be required to leave a stage: name Staging, Production, "
                                      "Archived or an @alias")
            canonical = stage.value
        if canonical not in rule:
            rule.append(canonical)
    return rule


def evidence_problem(run: Run, children: Sequence[Run], bundle_hash: str) -> str | None:
    """Why ``run`` (with its child runs) is not evidence for the bundle ``bundle_hash``, or None
    when it is: a FINISHED run of the nightly job whose gates all passed and that evaluated
    exactly this bundle (a suite run with a pair that did, or that pair's own run)."""
    run_id = run.info.run_id
    if run.info.lifecycle_stage is not LifecycleStage.ACTIVE:
        return f"evidence run {run_id} is deleted"
    if run.info.status is not RunStatus.FINISHED:
        return f"evidence run {run_id} is {run.info.status.value}, not FINISHED"
    role = run.data.tags.get(suite_tags.ROLE)
    if role not in (suite_tags.PARENT, suite_tags.PAIR):
        return (f"run {run_id} is not a run of the nightly job (evalkit run, or evalkit models promote --suite): "
                "evidence is a suite run whose gates passed")
    status = run.data.tags.get(suite_tags.STATUS)
    if status != suite_tags.PASSED:
        return f"the gates of evidence run {run_id} did not pass (suite status: {status})"
    pairs = [run] if role == suite_tags.PAIR else [c for c in children
                                               if c.data.tags.get(suite_tags.ROLE) == suite_tags.PAIR]
    evaluated = {p.data.params.get(BUNDLE_HASH_PARAM) for p in pairs}
    if bundle_hash not in evaluated:
        seen = ", ".join(sorted(h for h in evaluated if h)) or "no registered or logged bundle"
        return f"evidence run {run_id} evaluated {seen}, not this version's bundle {bundle_hash}"
    failing = [p.info.run_id for p in pairs if p.data.params.get(BUNDLE_HASH_PARAM) == bundle_hash
               and p.data.tags.get(suite_tags.STATUS) != suite_tags.PASSED]
    if failing:
        return f"the gates of run {failing[0]}, which evaluated this version, did not pass"
    return None


# ---- search filters ------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """``key op value`` of a registry search: ``key`` is an attribute (``name``, ``run_id``...)
    or ``tags.<key>``; ``op`` is ``=``, ``!=``, ``LIKE`` or ``ILIKE``."""

    key: str
    op: str
    value: str


_CONDITION = re.compile(
    r"""\s*(?P<key>tags?\.(?:`[^`]+`|"[^"]+"|[A-Za-z0-9_.\-/]+)|[A-Za-z_]+)\s*"""
    r"""(?P<op>!=|=|(?i:ilike)|(?i:like))\s*(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+)\s*""",
)
_AND = re.compile(r"(?i)\s*and\s+")


def parse_registry_filter(text: str | None, attributes: Sequence[str]) -> list[Condition]:
    """Conditions joined by AND, e.g. ``name LIKE 'rag%' AND tags.team = 'nlp'`` (``tag.`` as MLflow
    writes it is read as ``tags.``); ``attributes``
    are the keys allowed besides ``tags.<key>``. FilterSyntaxError points at the problem."""
    if text is None or not text.strip():
        return []
    conditions: list[Condition] = []
    position = 0
    while True:
        match = _CONDITION.match(text, position)
        if match is None:
            raise FilterSyntaxError(text, position, "expected <key> =|!=|LIKE|ILIKE <'value'> where the key is "
                                                    f"{', '.join(attributes)} or tags.<key>")
        key = match["key"]
        if key.startswith("tag."):  # MLflow's spelling
            key = "tags." + key[4:]
        if not key.startswith("tags.") and key not in attributes:
            raise FilterSyntaxError(text, match.start("key"),
                                    f"unknown key {key!r}; use {', '.join(attributes)} or tags.<key>")
        if key.startswith("tags."):
            key = "tags." + key[5:].strip('`"')
        value = match["value"]
        if value[0] in "'\"":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        conditions.append(Condition(key, match["op"].upper(), value))
        position = match.end()
        if position >= len(text):
            return conditions
        joiner = _AND.match(text, position)
        if joiner is None:
            raise FilterSyntaxError(text, position, "expected AND between conditions")
        position = joiner.end()


def parse_registry_order(order_by: Sequence[str] | str | None, attributes: Sequence[str]) -> list[tuple[str, bool]]:
    """``[(attribute, ascending), ...]`` from clauses such as ``"name ASC"``."""
    clauses = [order_by] if isinstance(order_by, str) else list(order_by or [])
    result = []
    for clause in clauses:
        parts = clause.split()
        if not parts or len(parts) > 2 or parts[0] not in attributes or (
                len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            raise InvalidArgument(f"order_by clause {clause!r}: use '<key> [ASC|DESC]' with a key of "
                                  f"{', '.join(attributes)}")
        result.append((parts[0], len(parts) == 1 or parts[1].upper() == "ASC"))
    return result
