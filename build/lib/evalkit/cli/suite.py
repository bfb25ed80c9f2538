"""``evalkit run SUITE`` (the nightly job) and ``evalkit history SUITE --metric NAME``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from evalkit.cli.output import format_time, print_json, print_table
from evalkit.errors import EvalkitError, InvalidArgument, NotFound
from evalkit.tracking.client import TrackingClient

if TYPE_CHECKING:
    from evalkit.suite.history import HistoryPoint


@click.command("run")
@click.argument("suite_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("evalkit-out"),
              show_default=True, help="Folder for junit.xml, summary.md and reports/.")
@click.option("--baseline", default=None, metavar="RUN_ID|last-passing",
              help="Compare with this run instead of the suite's baseline.run.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar [default: on a terminal].")
def run_command(suite_file: Path, out_dir: Path, baseline: str | None, progress: bool | None) -> None:
    """Run a suite file and gate it: exit 0 when every gate passes, 1 when a gate failed, 2 when
    the job could not run (bad suite file, endpoint down, budget spent)."""
    from evalkit.suite.job import run_suite
    from evalkit.suite.junit import write_job_error

    try:
        result = run_suite(suite_file, out_dir, baseline=baseline, progress=progress)
    except EvalkitError as exc:
        write_job_error(suite_file.stem, str(exc), out_dir / "junit.xml")
        raise
    rows = []
    for pair in result.pairs:
        for gate in pair.gates:
            value = "" if gate.observed is None else f"{gate.observed:.4g}"
            rows.append((f"{pair.dataset} × {pair.model}", gate.name, gate.status, value, gate.message))
        if not pair.gates and pair.error:
            rows.append((f"{pair.dataset} × {pair.model}", "evaluation", "error", "", pair.error))
    print_table(f"suite {result.suite}: {result.status}", ["pair", "gate", "result", "value", "detail"], rows)
    for pair in result.pairs:
        if pair.error:
            click.echo(f"{pair.dataset} × {pair.model}: could not evaluate: {pair.error}", err=True)
        if pair.report_path:
            click.echo(f"report: {pair.report_path}")
    click.echo(f"junit: {result.junit_path}\nsummary: {result.summary_path}\nsuite run: {result.run_id}")
    raise SystemExit(result.exit_code)


@click.command("history")
@click.argument("suite")
@click.option("--metric", "-m", required=True, help="Metric name, full or short (faithfulness/mean, latency/p95).")
@click.option("--last", "-n", default=30, show_default=True, type=click.IntRange(1, 1000), help="Runs per pair.")
@click.option("--dataset", default=None, help="Only this dataset of the suite.")
@click.option("--model", default=None, help="Only this model of the suite.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def history_command(suite: str, metric: str, last: int, dataset: str | None, model: str | None, as_json: bool) -> None:
    """A suite's metric over its last runs (SUITE is its name or its file), flagging the runs
    whose model snapshot differs from the run before."""
    from evalkit.suite.config import load_suite
    from evalkit.suite.history import metric_history

    name = load_suite(suite).name if Path(suite).suffix.lower() in (".yaml", ".yml", ".toml") else suite
    client = TrackingClient(create=False)
    points = metric_history(client, name, metric, last, dataset, model)
    if points and not any(point.metric for point in points):
        _explain_unknown_metric(client, name, metric, points)
    if as_json:
        print_json([point.__dict__ for point in points])
        return
    if not points:
        raise NotFound(f"suite {name!r} has no runs in this tracking store")
    rows = [(format_time(p.start_time), f"{p.dataset} × {p.model}", p.run_id, p.status,
             "" if p.value is None else f"{p.value:.4g}", p.model_snapshot or "",
             "snapshot changed" if p.snapshot_changed else "") for p in points]
    resolved = sorted({p.metric for p in points if p.metric})
    print_table(f"{name}: {', '.join(resolved) or metric}", ["started", "pair", "run_id", "gates", "value",
                                                              "model snapshot", "note"], rows)


def _explain_unknown_metric(client: TrackingClient, suite: str, metric: str, points: list[HistoryPoint]) -> None:
    """Raise the error of a ``--metric`` no run of the suite logged, listing the ones they did."""
    from evalkit.suite.expressions import resolve_metric

    newest = {(point.dataset, point.model): point.run_id for point in points}
    logged = {key for run_id in newest.values() for key in client.get_run(run_id).data.metrics}
    try:
        resolve_metric(metric, logged)
    except InvalidArgument as exc:
        raise InvalidArgument(f"--metric: {exc} (in the runs of suite {suite!r})") from None
