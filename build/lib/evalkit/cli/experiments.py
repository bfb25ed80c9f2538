"""``evalkit experiments list | create | rename | delete | restore``."""

from __future__ import annotations

import click

from evalkit.cli.output import format_time, print_json, print_table
from evalkit.entities import Experiment, ViewType
from evalkit.errors import NotFound
from evalkit.tracking.client import TrackingClient


@click.group()
def experiments() -> None:
    """List, create, rename, delete and restore experiments."""


@experiments.command("list")
@click.option("--view", type=click.Choice([v.value for v in ViewType], case_sensitive=False), default="ACTIVE_ONLY", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def list_experiments(view: str, as_json: bool) -> None:
    """Every experiment in the store."""
    found = TrackingClient(create=False).search_experiments(view)
    if as_json:
        print_json([
            {"experiment_id": e.experiment_id, "name": e.name, "artifact_location": e.artifact_location,
             "lifecycle_stage": e.lifecycle_stage.value, "creation_time": e.creation_time, "tags": e.tags}
            for e in found
        ])
        return
    print_table(
        f"{len(found)} experiment(s)",
        ["experiment_id", "name", "lifecycle", "created", "artifact_location"],
        [[e.experiment_id, e.name, e.lifecycle_stage.value, format_time(e.creation_time), e.artifact_location] for e in found],
    )


@experiments.command("create")
@click.argument("name")
@click.option("--artifact-location", default=None,
              help="Folder for the runs' artifacts [default: evalkit-artifacts/<id> beside the store].")
def create_experiment(name: str, artifact_location: str | None) -> None:
    """Create an experiment (the tracking store too, if it does not exist yet)."""
    experiment_id = TrackingClient().create_experiment(name, artifact_location)
    click.echo(f"created experiment {name!r} (id {experiment_id})")


@experiments.command("rename")
@click.argument("experiment", metavar="NAME_OR_ID")
@click.argument("new_name")
def rename_experiment(experiment: str, new_name: str) -> None:
    """Give an experiment a new name; its id and runs stay the same."""
    client = TrackingClient(create=False)
    found = _find(client, experiment)
    client.rename_experiment(found.experiment_id, new_name)
    click.echo(f"renamed experiment {found.name!r} (id {found.experiment_id}) to {new_name!r}")


@experiments.command("delete")
@click.argument("experiment", metavar="NAME_OR_ID")
def delete_experiment(experiment: str) -> None:
    """Mark an experiment deleted: it and its runs leave the listings (see them with --view
    DELETED_ONLY), nothing is erased, and `evalkit experiments restore` brings it back."""
    client = TrackingClient(create=False)
    found = _find(client, experiment)
    client.delete_experiment(found.experiment_id)
    click.echo(f"deleted experiment {found.name!r} (id {found.experiment_id})")


@experiments.command("restore")
@click.argument("experiment", metavar="NAME_OR_ID")
def restore_experiment(experiment: str) -> None:
    """Bring a deleted experiment back."""
    client = TrackingClient(create=False)
    found = _find(client, experiment)
    client.restore_experiment(found.experiment_id)
    click.echo(f"restored experiment {found.name!r} (id {found.experiment_id})")


def _find(client: TrackingClient, name_or_id: str) -> Experiment:
    """The experiment named ``name_or_id``, else the one with that id (a name wins over an id)."""
    found = client.get_experiment_by_name(name_or_id)
    if found is not None:
        return found
    if name_or_id.isdigit():
        try:
            return client.get_experiment(name_or_id)
        except NotFound:
            pass
    raise NotFound(f"no experiment named {name_or_id!r} (nor with that id)")
