"""``evalkit runs search`` and ``evalkit runs show``."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import click

from evalkit.cli.output import (
    fitting_columns,
    format_time,
    print_json,
    print_table,
    table_width,
    table_width_of,
)
from evalkit.entities import ViewType
from evalkit.tracking import run_tags
from evalkit.tracking.client import TrackingClient
from evalkit.tracking.filter import (
    ENTITY_METRIC,
    ENTITY_PARAM,
    ENTITY_TAG,
    And,
    Comparison,
    Expr,
    Key,
    Not,
    Or,
    parse_filter,
    parse_order_by,
)
from evalkit.tracking.fluent import resolve_experiment_ids


@click.group()
def runs() -> None:
    """Search, inspect, delete and restore runs."""


@runs.command("search")
@click.option("--experiment", "-e", "experiments", multiple=True, help="Experiment name (repeatable) [default: the default experiment]")
@click.option("--filter", "-f", "filter_string", default=None, help="e.g. \"metrics.`faithfulness/v1/mean` > 0.8 AND params.model = 'gpt-4o'\"")
@click.option("--order-by", "-o", "order_by", multiple=True, help="e.g. 'metrics.accuracy DESC' (repeatable)")
@click.option("--max-results", "-n", default=50, show_default=True, type=click.IntRange(1, 50_000))
@click.option("--view", type=click.Choice([v.value for v in ViewType], case_sensitive=False), default="ACTIVE_ONLY", show_default=True)
@click.option("--columns", "-c", default=None,
              help="Comma-separated columns for the table, e.g. 'metrics.acc,params.model' [default: the "
                   "metrics, params and tags named in --filter and --order-by, then as many other metrics "
                   "as fit the terminal's width]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table (every column).")
def search(experiments: tuple[str, ...], filter_string: str | None, order_by: tuple[str, ...], max_results: int,
           view: str, columns: str | None, as_json: bool) -> None:
    """Find runs by params, metrics, tags and attributes."""
    client = TrackingClient(create=False)
    ids = resolve_experiment_ids(client, None, list(experiments))
    found, _ = client.search_runs(ids, filter_string, view, max_results, list(order_by))
    if as_json:
        print_json([_run_json(run) for run in found])
        return
    base = [[run.info.run_id, run.info.run_name, run.info.status.value, format_time(run.info.start_time)]
            for run in found]
    headers = ["run_id", "run_name", "status", "start_time"]
    if columns:
        extra = [c.strip() for c in columns.split(",") if c.strip()]
        left_out = 0
    else:
        named = _named_columns(filter_string, order_by)
        others = [f"metrics.{k}" for k in sorted({k for run in found for k in run.data.metrics})
                  if f"metrics.{k}" not in named]
        fixed = [[*row, *(_cell(run, c) for c in named)] for row, run in zip(base, found, strict=True)]
        budget = table_width() - table_width_of([*headers, *named], fixed)
        fitting = fitting_columns(others, [[_cell(run, c) for c in others] for run in found], budget)
        extra, left_out = [*named, *others[:fitting]], len(others) - fitting
    rows = [[*row, *(_cell(run, c) for c in extra)] for row, run in zip(base, found, strict=True)]
    print_table(f"{len(found)} run(s)", [*headers, *extra], rows)
    if left_out:
        click.echo(f"{left_out} more column{'s' if left_out > 1 else ''}: use -c to choose "
                   "(e.g. -c 'metrics.a,params.b'), or --json for every one")


def _named_columns(filter_string: str | None, order_by: tuple[str, ...]) -> list[str]:
    """The metrics, params and tags the filter and the sort name, in the order written: the user
    is looking at them, so they are shown whatever the width."""
    keys = [*_filter_keys(parse_filter(filter_string)), *(clause.key for clause in parse_order_by(list(order_by)))]
    prefixes = {ENTITY_METRIC: "metrics.", ENTITY_PARAM: "params.", ENTITY_TAG: "tags."}
    return list(dict.fromkeys(prefixes[k.entity] + k.name for k in keys if k.entity in prefixes))


def _filter_keys(node: Expr | None) -> Iterator[Key]:
    if isinstance(node, Comparison):
        yield node.key
    elif isinstance(node, (And, Or)):
        for item in node.items:
            yield from _filter_keys(item)
    elif isinstance(node, Not):
        yield from _filter_keys(node.item)


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
    client = TrackingClient(create=False)
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
            *([["failure_reason", reason]] if (reason := run.data.tags.get(run_tags.FAILURE_REASON)) else []),
        ],
    )
    for title, values in (("params", run.data.params), ("metrics", run.data.metrics), ("tags", run.data.tags)):
        if values:
            print_table(title, ["key", "value"], sorted(values.items()))
    if artifacts:
        print_table("artifacts", ["path", "size"], [[a["path"], "dir" if a["is_dir"] else a["file_size"]] for a in artifacts])


@runs.command("delete")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID...")
def delete(run_ids: tuple[str, ...]) -> None:
    """Mark runs deleted: searches leave them out (list them with --view DELETED_ONLY), their
    values and artifacts are kept, and `evalkit runs restore` brings them back."""
    client = _client_with_runs(run_ids)
    for run_id in run_ids:
        client.delete_run(run_id)
        click.echo(f"deleted run {run_id}")


@runs.command("restore")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID...")
def restore(run_ids: tuple[str, ...]) -> None:
    """Bring deleted runs back."""
    client = _client_with_runs(run_ids)
    for run_id in run_ids:
        client.restore_run(run_id)
        click.echo(f"restored run {run_id}")


def _client_with_runs(run_ids: tuple[str, ...]) -> TrackingClient:
    """A client of the existing store, once every id is known to be in it: a typo in the
    third id changes none of the runs."""
    client = TrackingClient(create=False)
    for run_id in run_ids:
        client.get_run(run_id)
    return client


def _run_json(run) -> dict:  # noqa: ANN001
    info = dataclasses.asdict(run.info)
    info["status"] = run.info.status.value
    info["lifecycle_stage"] = run.info.lifecycle_stage.value
    metrics = {k: (None if math.isnan(v) else v) for k, v in run.data.metrics.items()}
    return {"info": info, "params": run.data.params, "metrics": metrics, "tags": run.data.tags}
