"""``evalkit server`` and ``evalkit ui``: run the tracking server (MLflow's flag names)."""

from __future__ import annotations

import click

from evalkit.cli.output import format_time, print_json, print_table
from evalkit.tracking.stores import get_tracking_uri

SERVER_HELP = """Run the team tracking server: the REST API at /api/v1 (docs at /docs) and the web UI.

\b
Clients point at it with set_tracking_uri("http://HOST:PORT") or EVALKIT_TRACKING_URI,
and send a token from EVALKIT_TRACKING_TOKEN.

\b
Production set-up:
  1. A PostgreSQL database for runs and metrics (pip install 'evalkit[server,postgres,s3]'):
       --backend-store-uri postgresql://evalkit:PASSWORD@db:5432/evalkit
  2. An S3 bucket (or S3-compatible service) for artifacts, with the server's AWS credentials
     in the usual AWS_* variables or instance role:
       --default-artifact-root s3://team-bucket/evalkit
     Artifacts are proxied through the server (--serve-artifacts, the default), or with
     --no-serve-artifacts clients get presigned S3 URLs and move the bytes themselves.
  3. Tokens: bound to any address but 127.0.0.1, the server requires them. On its first start
     it prints an admin token once; make more with
       evalkit server token create --name ci --role editor --backend-store-uri ...
     (roles: reader, editor, admin). --insecure-no-auth turns this off: trusted networks only.
  4. TLS from a reverse proxy (nginx, Caddy, a cloud load balancer) in front of
     --host 127.0.0.1 or a private address; tokens must never cross a network unencrypted.
     Allow request bodies as large as your artifacts (nginx: client_max_body_size).
  5. --workers N for several processes (migrations run once, before they start).

\b
Example:
  evalkit server --backend-store-uri postgresql://evalkit@db/evalkit \\
      --default-artifact-root s3://team-bucket/evalkit --host 0.0.0.0 --port 5000 --workers 4
"""


@click.group("server", help=SERVER_HELP, invoke_without_command=True)
@click.option("--backend-store-uri", envvar="EVALKIT_BACKEND_STORE_URI",
              help="Where runs are kept: postgresql://user:password@host:5432/db, sqlite:///path.db or a file path.")
@click.option("--default-artifact-root", envvar="EVALKIT_ARTIFACT_ROOT", default=None,
              help="Where new experiments keep artifacts: s3://bucket/prefix or a folder "
                   "[default: evalkit-artifacts beside a SQLite file, ./evalkit-artifacts otherwise].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback requires tokens.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes.")
@click.option("--serve-artifacts/--no-serve-artifacts", default=True, show_default=True,
              help="Proxy artifacts through the server; without it, an s3:// root is reached with presigned URLs "
                   "and any other root directly by clients.")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve without tokens on a non-loopback address (anyone who can reach it can read and write).")
@click.pass_context
def server_command(ctx: click.Context, backend_store_uri: str | None, default_artifact_root: str | None, host: str,
                   port: int, workers: int, serve_artifacts: bool, insecure_no_auth: bool) -> None:
    if ctx.invoked_subcommand is not None:  # e.g. the token commands: they take their own options
        return
    if not backend_store_uri:
        raise click.UsageError("Missing option '--backend-store-uri' (or $EVALKIT_BACKEND_STORE_URI).")
    run_server(backend_store_uri, default_artifact_root, host, port, workers, serve_artifacts, insecure_no_auth)


@click.command("ui")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback: no tokens).")
@click.pass_context
def ui_command(ctx: click.Context, port: int, host: str) -> None:
    """Browse the local tracking store (--tracking-uri, $EVALKIT_TRACKING_URI or ./evalkit.db) at http://127.0.0.1:PORT."""
    run_server(get_tracking_uri(), None, host, port, 1, True, False)


def run_server(backend_store_uri: str, default_artifact_root: str | None, host: str, port: int, workers: int,
               serve_artifacts: bool, insecure_no_auth: bool) -> None:
    from evalkit.server.auth import requires_auth
    from evalkit.server.config import ServerConfig
    from evalkit.server.serve import prepare, serve
    from evalkit.tracking.schemes import uri_scheme
    from evalkit.tracking.uri import parse_tracking_uri, redact

    if uri_scheme(backend_store_uri) in ("http", "https"):
        raise click.BadParameter("the backend store of a server is a database (postgresql://, sqlite:///...), "
                                 "not another server", param_hint="--backend-store-uri")
    location = parse_tracking_uri(backend_store_uri)
    root = _artifact_root(default_artifact_root) or location.default_artifact_root
    auth = requires_auth(host, insecure_no_auth)
    config = ServerConfig(location.uri, root, serve_artifacts=serve_artifacts, auth_enabled=auth,
                          loopback_only=not auth and not insecure_no_auth)
    token = prepare(config)
    if token:
        click.echo("No token existed: created the admin token below. It is shown this once; keep it in a secret "
                   f"store and give clients their own tokens (evalkit server token create).\n\n    {token}\n", err=True)
    click.echo(f"evalkit server: {redact(location.uri)}, artifacts in {root}, on http://{host}:{port} "
               f"({'tokens required' if auth else 'no authentication'})", err=True)
    serve(config, host, port, workers)


def _artifact_root(root: str | None) -> str | None:
    if not root:
        return None
    from pathlib import Path

    from evalkit.tracking.artifacts import artifact_scheme, join_artifact_uri

    if artifact_scheme(root) == "file" and "://" not in root:
        return str(Path(root).expanduser().resolve())
    return join_artifact_uri(root)


@server_command.group("token")
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
