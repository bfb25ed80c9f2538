"""``evalkit report``: write a run's HTML report, optionally against a baseline run."""

from __future__ import annotations

from pathlib import Path

import click

from evalkit.errors import InvalidArgument


@click.command("report")
@click.argument("run_id")
@click.option("--baseline", "-b", default=None, metavar="RUN_ID", help="Compare with this run, row by row.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Where to write the HTML [default: report-<run id>.html].")
@click.option("--row-cap", default=2000, show_default=True, type=click.IntRange(1),
              help="Rows embedded in full; past it the failed, changed and lowest-scoring ones.")
def report_command(run_id: str, baseline: str | None, output: str | None, row_cap: int) -> None:
    """Write the self-contained HTML report of an evaluation run."""
    from evalkit.evaluation import find_report_renderer
    from evalkit.tracking.stores import get_tracking_uri

    renderer = find_report_renderer()
    if renderer is None:
        raise InvalidArgument("no report renderer is installed (the evalkit package's 'reports' module provides it)")
    target = Path(output or f"report-{run_id[:8]}.html")
    target.write_text(renderer(run_id, baseline_run_id=baseline, tracking_uri=get_tracking_uri(), row_cap=row_cap),
                      encoding="utf-8")
    click.echo(f"report: {target.resolve()}")
