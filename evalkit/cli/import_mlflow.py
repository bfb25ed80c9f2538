"""``evalkit import-mlflow SOURCE``: copy an MLflow tracking store into the current evalkit store."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

import click

from evalkit.errors import StoreUnavailable
from evalkit.redaction import redact
from evalkit.tracking.stores import get_tracking_uri

if TYPE_CHECKING:
    from evalkit.tracking.store import TrackingStore


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

    target_uri = get_tracking_uri()
    mlflow = open_mlflow_source(source)
    with tempfile.TemporaryDirectory(prefix="evalkit-dry-run-") as scratch:
        store = _target_store(target_uri, dry_run, scratch)
        try:
            click.echo(f"{'would copy' if dry_run else 'copying'} MLflow store {mlflow.display_uri} "
                       f"into {redact(target_uri)}")
            summary = MlflowImporter(
                mlflow, store, artifacts_destination=artifacts_destination, dry_run=dry_run,
                progress=(lambda line: None) if quiet else click.echo,
            ).run()
        finally:
            store.close()
            mlflow.close()
    click.echo(("dry run, nothing written: " if dry_run else "done: ") + "summary")
    for line in summary.lines():
        click.echo(f"  {line}")


def _target_store(uri: str, dry_run: bool, scratch: str) -> TrackingStore:
    """The evalkit store to import into. A dry run creates nothing: where no store exists yet, it
    compares with an empty one in a scratch folder."""
    from evalkit.tracking.schemes import open_tracking_store

    if not dry_run:
        return open_tracking_store(uri)
    try:
        return open_tracking_store(uri, create=False)
    except StoreUnavailable:
        return open_tracking_store(f"sqlite:///{scratch}/empty.db")

