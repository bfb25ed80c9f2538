"""``evalkit report``: write a run's HTML report, optionally against a baseline run."""

from __future__ import annotations

from pathlib import Path

import click

from evalkit.errors import InvalidArgument
from evalkit.tracking.client import TrackingClient


@click.command("report")
@click.argument("run_id")
@click.option("--baseline", "-b", default=None, metavar="RUN_ID", help="Compare with this run, row by row.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the HTML [default: report-<run id>.html]. Its folder must exist: "
                   "a mistyped folder is an error rather than a new folder somewhere unexpected.")
@click.option("--row-cap", default=2000, show_default=True, type=click.IntRange(1),
              help="Rows embedded in full; past it the failed, changed and lowest-scoring ones.")
def report_command(run_id: str, baseline: str | None, output: Path | None, row_cap: int) -> None:
    """Write the self-contained HTML report of an evaluation run."""
    from evalkit.evaluation.engine import find_report_renderer

    target = output or Path(f"report-{run_id[:8]}.html")
    folder = target.parent.resolve()
    if not folder.is_dir():
        raise InvalidArgument(f"--output: folder {folder} does not exist; create it first (mkdir -p {folder})")
    client = TrackingClient(create=False)
    client.get_run(run_id)  # an unknown run fails before any rendering
    renderer = find_report_renderer()
    if renderer is None:
        raise InvalidArgument("no report renderer is installed (the evalkit package's 'reports' module provides it)")
    html = renderer(run_id, baseline_run_id=baseline, tracking_uri=client.tracking_uri, row_cap=row_cap)
    try:
        target.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"--output: cannot write {target}: {exc.strerror or exc}") from None
    click.echo(f"report: {target.resolve()}")
