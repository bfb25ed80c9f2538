"""``evalkit runs search`` and ``evalkit runs show``."""

from __future__ import annotations

import dataclasses
import math

import click

from evalkit.cli.output import format_time, print_json, print_table
from evalkit.entities import ViewType
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.fluent import resolve_experiment_ids


@click.group()
def runs() -> None:
    """Search and inspect runs."""


@runs.command("search")
@click.option("--experiment", "-e", "experiments", multiple=True, help="Experiment name (repeatable) [default: the default experiment]")
@click.option("--filter", "-f", "filter_string", default=None, help="e.g. \"metrics.`faithfulness/v1/mean` > 0.8 AND params.model = 'gpt-4o'\"")
@click.option("--order-by", "-o", "order_by", multiple=True, help="e.g. 'metrics.accuracy DESC' (repeatable)")
@click.option("--max-results", "-n", default=50, show_default=True, type=click.IntRange(1, 50_000))
@click.option("--view", type=click.Choice([v.value for v in ViewType], case_sensitive=False), default="ACTIVE_ONLY", show_default=True)
@click.option("--columns", "-c", default=None,
              help="Comma-separated columns for the table, e.g. 'metrics.acc,params.model' [default: every metric]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def search(experiments: tuple[str, ...], filter_string: str | None, order_by: tuple[str, ...], max_results: int,
           view: str, columns: str | None, as_json: bool) -> None:
    """Find runs by params, metrics, tags and attributes."""
    client = TrackingClient()
    ids = resolve_experiment_ids(client, None, list(experiments))
    found, _ = client.search_runs(ids, filter_string, view, max_results, list(order_by))
    if as_json:
        print_json([_run_json(run) for run in found])
        return
    if columns:
        extra = [c.strip() for c in columns.split(",") if c.strip()]
    else:
        extra = [f"metrics.{k}" for k in sorted({k for run in found for k in run.data.metrics})]
    rows = [
        [run.info.run_id, run.info.run_name, run.info.status.value, format_time(run.info.start_time)]
        + [_cell(run, column) for column in extra]
        for run in found
    ]
    print_table(f"{len(found)} run(s)", ["run_id", "run_name", "status", "start_time", *extra], rows)


def _cell(run, column: str):  # noqa: ANN001, ANN202
    kind, _, key = column.partition(".")
    values = {"metrics": run.data.metrics, "params": run.data.params, "tags": run.data.tags}.get(kind)
    if values is None:
        raise click.BadParameter(f"{column!r}: columns start with metrics., params. or tags.", param_hint="--columns")
    return values.get(key)


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(run_id: str, as_json: bool) -> None:
    """Show one run: info, params, metrics, tags and artifacts."""
    client = TrackingClient()
    run = client.get_run(run_id)
    artifacts = [dataclasses.asdict(a) for a in client.list_artifacts(run_id)]
    if as_json:
        print_json({**_run_json(run), "artifacts": artifacts})
        return
    info = run.info
    print_table(
        f"run {info.run_id}",
        ["field", "value"],
        [
            ["name", info.run_name], ["experiment_id", info.experiment_id], ["status", info.status.value],
            ["start_time", format_time(info.start_time)], ["end_time", format_time(info.end_time)],
            ["parent_run_id", info.parent_run_id or ""], ["lifecycle", info.lifecycle_stage.value],
            ["artifact_uri", info.artifact_uri],
        ],
    )
    for title, values in (("params", run.data.params), ("metrics", run.data.metrics), ("tags", run.data.tags)):
        if values:
            print_table(title, ["key", "value"], sorted(values.items()))
    if artifacts:
        print_table("artifacts", ["path", "size"], [[a["path"], "dir" if a["is_dir"] else a["file_size"]] for a in artifacts])


def _run_json(run) -> dict:  # noqa: ANN001
    info = dataclasses.asdict(run.info)
    info["status"] = run.info.status.value
    info["lifecycle_stage"] = run.info.lifecycle_stage.value
    metrics = {k: (None if math.isnan(v) else v) for k, v in run.data.metrics.items()}
    return {"info": info, "params": run.data.params, "metrics": metrics, "tags": run.data.tags}
