"""``evalkit``: the command group and its error handling."""

from __future__ import annotations

import sys

import click

from evalkit import __version__
from evalkit.cli.evaluate import evaluate_command
from evalkit.cli.experiments import experiments
from evalkit.cli.import_mlflow import import_mlflow_command
from evalkit.cli.models import models
from evalkit.cli.report import report_command
from evalkit.cli.runs import runs
from evalkit.cli.server import server_command, ui_command
from evalkit.cli.suite import history_command, run_command
from evalkit.errors import EvalkitError


@click.group()
@click.version_option(__version__, prog_name="evalkit")
@click.option(
    "--tracking-uri",
    envvar="EVALKIT_TRACKING_URI",
    default=None,
    help="Tracking store: a SQLite file path, sqlite:///PATH or postgresql://... [default: ./evalkit.db]",
)
def cli(tracking_uri: str | None) -> None:
    """Evaluate LLM and RAG models and search what was tracked."""
    from evalkit.tracking.stores import set_tracking_uri

    set_tracking_uri(tracking_uri)


cli.add_command(runs)
cli.add_command(evaluate_command)
cli.add_command(report_command)
cli.add_command(experiments)
cli.add_command(run_command)
cli.add_command(history_command)
cli.add_command(server_command)
cli.add_command(ui_command)
cli.add_command(import_mlflow_command)
cli.add_command(models)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EvalkitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
