"""``evalkit import-mlflow SOURCE``: copy an MLflow tracking store into the current evalkit store."""

from __future__ import annotations

import click

from evalkit.redaction import redact
from evalkit.tracking.stores import get_tracking_uri


@click.command("import-mlflow")
@click.argument("source")
@click.option("--artifacts-destination", default=None, metavar="PATH_OR_URI",
              help="Where the MLflow server kept artifacts its runs name mlflow-artifacts:/... (that server's "
                   "--artifacts-destination, ./mlartifacts by default). Other artifact locations (folders, "
                   "file://, s3://) are read as the runs name them.")
@click.option("--dry-run", is_flag=True, help="Print what would be copied and what cannot be mapped; write nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
def import_mlflow_command(source: str, artifacts_destination: str | None, dry_run: bool, quiet: bool) -> None:
    """Copy an MLflow store into the evalkit store (--tracking-uri).

    SOURCE is an mlruns folder (MLflow's file store), a SQLite file, or a database URI:
    sqlite:///mlflow.db, postgresql://user@host/db, mysql://... (with its driver installed).
    Experiments, runs (name, status, start and end times, parent, deleted flag), params, tags,
    every metric value with its step and timestamp, and artifacts are copied; mlflow itself is not
    needed. Running it again copies only what is new: each imported run carries the tag
    evalkit.mlflow.run_id. What cannot be mapped is listed at the end.
    """
    # Imported here: SQLAlchemy and YAML are loaded only when the command runs, not for `evalkit --help`.
    from evalkit.migrate.mlflow_import import MlflowImporter
    from evalkit.migrate.mlflow_source import open_mlflow_source
    from evalkit.tracking.schemes import open_tracking_store

    target_uri = get_tracking_uri()
    mlflow = open_mlflow_source(source)
    store = open_tracking_store(target_uri)
    try:
        verb = "would copy" if dry_run else "copying"
        click.echo(f"{verb} MLflow store {mlflow.display_uri} into {redact(target_uri)}")
        importer = MlflowImporter(
            mlflow, store, artifacts_destination=artifacts_destination, dry_run=dry_run,
            progress=(lambda line: None) if quiet else click.echo,
        )
        summary = importer.run()
    finally:
        store.close()
        mlflow.close()
    click.echo(("dry run, nothing written: " if dry_run else "done: ") + "summary")
    for line in summary.lines():
        click.echo(f"  {line}")
