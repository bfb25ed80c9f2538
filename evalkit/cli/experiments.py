"""``evalkit experiments list``."""

from __future__ import annotations

import click

from evalkit.cli.output import format_time, print_json, print_table
from evalkit.entities import ViewType
from evalkit.tracking.client import TrackingClient


@click.group()
def experiments() -> None:
    """List experiments."""


@experiments.command("list")
@click.option("--view", type=click.Choice([v.value for v in ViewType], case_sensitive=False), default="ACTIVE_ONLY", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def list_experiments(view: str, as_json: bool) -> None:
    """Every experiment in the store."""
    found = TrackingClient().search_experiments(view)
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
