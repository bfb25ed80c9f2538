"""``evalkit models list / show / register / promote / history``: the model registry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from evalkit.cli.output import format_time, print_json, print_table
from evalkit.tracking.client import TrackingClient


@click.group("models")
def models() -> None:
    """Registered models: versions, stages, aliases and their history."""


def _short(text: str | None, width: int = 12) -> str:
    return (text or "")[:width]


@models.command("list")
@click.option("--filter", "filter_string", default=None, help="e.g. \"name LIKE 'rag%' AND tags.team = 'nlp'\"")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(filter_string: str | None, as_json: bool) -> None:
    """Registered models, by name."""
    found = TrackingClient(create=False).search_registered_models(filter_string, max_results=1000)
    if as_json:
        print_json([m.to_dict() for m in found])
        return
    rows = [(m.name, ", ".join(f"{v.current_stage}: v{v.version}" for v in m.latest_versions),
             ", ".join(f"@{a}: v{v}" for a, v in m.aliases.items()), ", ".join(m.evidence_required),
             format_time(m.last_updated_timestamp)) for m in found]
    print_table("registered models", ["name", "latest versions", "aliases", "evidence required", "updated"], rows)


@models.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show_command(name: str, as_json: bool) -> None:
    """A registered model and its versions."""
    client = TrackingClient(create=False)
    model = client.get_registered_model(name)
    versions = client.search_model_versions(f"name = '{_quoted(name)}'", order_by=["version DESC"])
    if as_json:
        print_json({**model.to_dict(), "versions": [v.to_dict() for v in versions]})
        return
    click.echo(f"{model.name}: {model.description or '(no description)'}")
    if model.tags:
        click.echo("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(model.tags.items())))
    click.echo("evidence required for: " + (", ".join(model.evidence_required) or "nothing"))
    rows = [(v.version, v.current_stage, ", ".join(f"@{a}" for a in v.aliases), _short(v.bundle_hash), v.flavor,
             v.run_id or v.source, format_time(v.creation_timestamp), v.description) for v in versions]
    print_table(None, ["version", "stage", "aliases", "bundle", "flavor", "source run", "created", "description"], rows)


@models.command("register")
@click.argument("model_uri")
@click.argument("name")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag of the new version (repeatable).")
@click.option("--description", default=None)
def register_command(model_uri: str, name: str, tags: tuple[str, ...], description: str | None) -> None:
    """Register the bundle at MODEL_URI (runs:/RUN_ID/PATH) as the next version of NAME."""
    from evalkit.models.api import register_model

    pairs = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: use KEY=VALUE", param_hint="--tag")
        pairs[key] = value
    version = register_model(model_uri, name, tags=pairs or None)
    if description:
        TrackingClient().update_model_version(name, version.version, description)
    click.echo(f"registered {name} version {version.version} (bundle {version.bundle_hash})")


@models.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--to", "target", required=True, metavar="STAGE|@ALIAS",
              help="Staging, Production, Archived, None, or an alias such as @champion.")
@click.option("--suite", "suite_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Run this suite against the version first; promote only if every gate passes.")
@click.option("--suite-model", default=None, help="The suite's model the version replaces (if it has several).")
@click.option("--evidence", "evidence_run_id", default=None, metavar="RUN_ID",
              help="A passing suite run that already evaluated this version (instead of --suite).")
@click.option("--archive/--no-archive", default=True, show_default=True,
              help="Archive the other versions in the target stage (Staging and Production).")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("evalkit-out"),
              show_default=True, help="Folder for the suite's junit.xml, summary.md and reports/.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar [default: on a terminal].")
def promote_command(name: str, version: str, target: str, suite_file: Path | None, suite_model: str | None,
                    evidence_run_id: str | None, archive: bool, out_dir: Path, progress: bool | None) -> None:
    """Move VERSION of NAME to a stage or alias. With --suite the suite runs against that version
    first: exit 0 and the move when every gate passes, exit 1 (2 if the suite could not run) and
    no move otherwise."""
    from evalkit.entities import Stage
    from evalkit.models.promote import parse_target, promote

    if suite_file is not None and evidence_run_id is not None:
        raise click.UsageError("give --suite (run it now) or --evidence RUN_ID (an earlier run), not both")
    canonical = parse_target(target)
    if suite_file is None:
        client = TrackingClient()
        if canonical.startswith("@"):
            client.set_registered_model_alias(name, canonical[1:], version, evidence_run_id=evidence_run_id)
        else:
            client.transition_model_version_stage(
                name, version, canonical, archive and canonical in (Stage.STAGING.value, Stage.PRODUCTION.value),
                evidence_run_id=evidence_run_id)
        click.echo(f"{name} version {version} -> {canonical}" + (f" (evidence: run {evidence_run_id})"
                                                                  if evidence_run_id else ""))
        return
    result = promote(name, version, canonical, suite_file, out_dir, suite_model, archive, progress)
    suite = result.suite
    rows = [(f"{p.dataset} × {p.model}", g.name, g.status, "" if g.observed is None else f"{g.observed:.4g}",
             g.message) for p in suite.pairs for g in p.gates]
    print_table(f"suite {suite.suite} on {name} version {version}: {suite.status}",
                ["pair", "gate", "result", "value", "detail"], rows)
    for pair in suite.pairs:
        if pair.error:
            click.echo(f"{pair.dataset} × {pair.model}: could not evaluate: {pair.error}", err=True)
    click.echo(f"suite run: {suite.run_id}")
    if not result.promoted:
        click.echo(f"not promoted: {name} version {version} stays where it was (the suite {suite.status})", err=True)
        raise SystemExit(suite.exit_code)
    click.echo(f"promoted {name} version {version} -> {canonical} (evidence: run {suite.run_id})")


@models.command("history")
@click.argument("name")
@click.option("--version", default=None, help="Only the events about this version.")
@click.option("--at", "at", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
              default=None, help="Instead, the stages and aliases as they were at this UTC time (end of day for a date).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def history_command(name: str, version: str | None, at: datetime | None, as_json: bool) -> None:
    """Every stage transition, alias move and evidence-rule change of NAME, oldest first; with
    --at, which versions were in each stage and where each alias pointed at that time."""
    events = TrackingClient(create=False).get_model_version_history(name, version)
    if at is not None:
        _print_state(name, events, at, as_json)
        return
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    rows = [(format_time(e.timestamp), e.kind if e.alias is None else f"alias @{e.alias}",
             "" if e.version is None else e.version, e.from_value or "-", e.to_value or "-", e.user_id or "",
             e.evidence_run_id or "") for e in events]
    print_table(f"history of {name}", ["when", "what", "version", "from", "to", "who", "evidence run"], rows)


def _print_state(name: str, events: list, at: datetime, as_json: bool) -> None:
    from evalkit.entities import Stage
    from evalkit.models.history import state_at

    if at.hour == at.minute == at.second == 0:
        at = at + timedelta(days=1) - timedelta(milliseconds=1)  # a date means the end of that day
    state = state_at(events, int(at.replace(tzinfo=timezone.utc).timestamp() * 1000))
    rows = [(stage.value, ", ".join(f"v{v}" for v in state.in_stage(stage)) or "-")
            for stage in Stage if stage is not Stage.NONE]
    rows += [(f"@{alias}", f"v{version}") for alias, version in sorted(state.aliases.items())]
    if as_json:
        print_json({"at": at.isoformat(), "stages": {s: v for s, v in rows if not s.startswith("@")},
                    "aliases": state.aliases})
        return
    print_table(f"{name} at {at:%Y-%m-%d %H:%M:%S} UTC", ["stage or alias", "versions"], rows)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
