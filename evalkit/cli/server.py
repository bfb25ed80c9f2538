"""``evalkit server``: the tracking server's command group, and ``evalkit server token ...`` to
manage its access tokens in the server's database."""

from __future__ import annotations

import click

from evalkit.cli.output import format_time, print_json, print_table
from evalkit.tracking.stores import get_tracking_uri


@click.group("server", invoke_without_command=True)
@click.pass_context
def server(ctx: click.Context) -> None:
    """The team tracking server, and its access tokens (`evalkit server token --help`)."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@server.group("token")
def token() -> None:
    """Create, revoke and list the server's access tokens.

    Tokens are stored as hashes in the server's database: give the --backend-store-uri the
    server runs with. A client sends its token as 'Authorization: Bearer ...' (set
    $EVALKIT_TRACKING_TOKEN). Readers read; editors also write; admins also manage tokens."""


_store_option = click.option(
    "--backend-store-uri", default=None, metavar="URI",
    help="The server's database: a SQLite path or postgresql://... [default: the tracking URI]",
)


def _tokens(backend_store_uri: str | None, create: bool):  # noqa: ANN202 - imports the server's optional deps
    from evalkit.server.auth.tokens import TokenStore

    return TokenStore.open(backend_store_uri or get_tracking_uri(), create=create)


@token.command("create")
@_store_option
@click.option("--name", required=True, help="Who or what uses the token (runs record it as their user).")
@click.option("--role", type=click.Choice(["reader", "editor", "admin"]), default="reader", show_default=True)
def create_token(backend_store_uri: str | None, name: str, role: str) -> None:
    """Create a token and print it, once: it is stored only as a hash."""
    tokens = _tokens(backend_store_uri, create=True)
    try:
        record, secret = tokens.create(name, role)
    finally:
        tokens.engine.dispose()
    click.echo(f"created {record.role} token {record.name!r}; it is shown only this once:", err=True)
    click.echo(secret)


@token.command("revoke")
@_store_option
@click.argument("name")
def revoke_token(backend_store_uri: str | None, name: str) -> None:
    """Revoke the active token NAME: every request and UI session using it is refused at once."""
    tokens = _tokens(backend_store_uri, create=False)
    try:
        record = tokens.revoke(name)
    finally:
        tokens.engine.dispose()
    click.echo(f"revoked {record.role} token {record.name!r}")


@token.command("list")
@_store_option
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def list_tokens(backend_store_uri: str | None, include_revoked: bool, as_json: bool) -> None:
    """The tokens (names, roles, dates; never the tokens themselves)."""
    tokens = _tokens(backend_store_uri, create=False)
    try:
        records = tokens.list(include_revoked)
    finally:
        tokens.engine.dispose()
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    print_table(
        f"{len(records)} token(s)",
        ["name", "role", "created", "last used", "revoked"],
        [[r.name, r.role, format_time(r.created), format_time(r.last_used), format_time(r.revoked_at)]
         for r in records],
    )
