"""The model registry through the tracking server (``evalkit server`` and the REST store): every
operation, the article's section 4 with an ``llm`` bundle, the evidence rule, bad input answered
exactly as on SQLite, exactly-once writes, roles, and the CLI against a server URI."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from click.testing import CliRunner
from server_fixture import serve_in_thread

import evalkit as ek
from evalkit import TrackingClient
from evalkit.cli.main import cli
from evalkit.errors import PermissionDenied
from evalkit.server.app import create_app
from evalkit.server.auth import TokenStore
from evalkit.server.config import ServerConfig
from evalkit.tracking import suite_tags
from evalkit.tracking.registry import BUNDLE_HASH_PARAM
from evalkit.tracking.rest.api import IDEMPOTENCY_HEADER, TOKEN_ENV
from evalkit.tracking.rest.store import RestStore
from evalkit.tracking.store import REGISTRY_OPERATIONS, TrackingStore

PROMPT = [{"role": "system", "content": "Classify the sentiment of the review as positive or negative."},
          {"role": "user", "content": "{{ input }}"}]


def unique(prefix: str) -> str:
    """A name no other test on the shared server uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def logged_bundle(retrieval: dict | None = None) -> ek.ModelInfo:
    with ek.start_run():
        return ek.log_model("evalkit:/extractive", prompt=PROMPT, inference_params={"temperature": 0},
                            retrieval=retrieval or {})


def suite_run(bundle: str, status: str = suite_tags.PASSED) -> str:
    """A FINISHED run shaped like the nightly job's (a parent and a pair child that evaluated ``bundle``)."""
    client = TrackingClient()
    experiment = client.get_or_create_default_experiment()
    parent = client.create_run(experiment, tags={suite_tags.ROLE: suite_tags.PARENT, suite_tags.STATUS: status})
    child = client.create_run(experiment, parent_run_id=parent.info.run_id,
                              tags={suite_tags.ROLE: suite_tags.PAIR, suite_tags.STATUS: status})
    client.log_param(child.info.run_id, BUNDLE_HASH_PARAM, bundle)
    client.set_terminated(child.info.run_id, "FINISHED")
    client.set_terminated(parent.info.run_id, "FINISHED")
    return parent.info.run_id


@pytest.fixture
def on_server(server_uri) -> str:
    ek.set_experiment(unique("registry"))
    return server_uri


def test_the_rest_store_implements_every_registry_operation():
    assert [name for name in REGISTRY_OPERATIONS if getattr(RestStore, name) is getattr(TrackingStore, name)] == []


def test_article_section_4_through_the_server(on_server):
    name = unique("SentimentClassifier")
    with ek.start_run() as active:
        ek.log_model("evalkit:/extractive", prompt=PROMPT, inference_params={"temperature": 0})
    client = TrackingClient()
    assert isinstance(client.store.inner, RestStore)

    model_uri = f"runs:/{active.info.run_id}/model"
    result = ek.register_model(model_uri=model_uri, name=name, tags={"team": "nlp", "use_case": "product-reviews"})
    client.update_model_version(name=name, version=result.version,
                                description="RoBERTa-base fine-tuned on 50k product reviews. F1=0.94")
    client.transition_model_version_stage(name=name, version=result.version, stage="Staging",
                                          archive_existing_versions=False)
    client.transition_model_version_stage(name=name, version=result.version, stage="Production",
                                          archive_existing_versions=True)
    model = ek.pyfunc.load_model(model_uri=f"models:/{name}/Production")
    prediction = model.predict(["This product is amazing!"])

    assert len(prediction) == 1 and isinstance(prediction[0], str)
    version = client.get_model_version(name, result.version)
    assert (version.current_stage, version.description, version.tags["use_case"], version.flavor) == (
        "Production", "RoBERTa-base fine-tuned on 50k product reviews. F1=0.94", "product-reviews", "llm")
    assert version.run_id == active.info.run_id and version.bundle_hash == result.bundle_hash
    # A second version takes Production over and the first is archived, both moves recorded.
    second = ek.register_model(logged_bundle({"top_k": 3}).model_uri, name)
    client.transition_model_version_stage(name, second.version, "Production", archive_existing_versions=True)
    assert client.get_model_version(name, result.version).current_stage == "Archived"
    # Aliases, MLflow's newer way: models:/Name@champion.
    client.set_registered_model_alias(name, "champion", result.version)
    assert ek.load_model(f"models:/{name}@champion").spec.retrieval == {}
    assert ek.load_model(f"models:/{name}/Production").spec.retrieval == {"top_k": 3}
    assert ek.load_model(f"models:/{name}@champion").predict(["Great!"])[0] == model.predict(["Great!"])[0]
    events = client.get_model_version_history(name)
    assert [(e.kind, e.version, e.from_value, e.to_value) for e in events] == [
        ("stage", 1, "None", "Staging"), ("stage", 1, "Staging", "Production"), ("stage", 1, "Production", "Archived"),
        ("stage", 2, "None", "Production"), ("alias", 1, None, "1")]
    assert all(e.user_id for e in events)


def test_every_registry_operation_through_the_server(on_server):
    name, other = unique("RAGBot"), unique("Other")
    client = TrackingClient()
    first, second = logged_bundle({"top_k": 5}), logged_bundle({"top_k": 3})

    created = client.create_registered_model(name, tags={"team": "nlp"}, description="a RAG bot")
    assert (created.name, created.tags, created.description, created.latest_versions) == (
        name, {"team": "nlp"}, "a RAG bot", [])
    client.create_registered_model(other, tags={"team": "search"})
    one = client.create_model_version(name, first.model_uri, tags={"k": 1}, description="top_k 5")
    two = client.create_model_version(name, second.model_uri)
    assert (one.version, one.bundle_hash, one.flavor, one.run_id, one.tags, two.version) == (
        1, first.bundle_hash, "llm", first.run_id, {"k": "1"}, 2)
    assert client.get_model_version(name, "1") == one
    assert client.update_model_version(name, 2, "top_k 3").description == "top_k 3"
    client.set_model_version_tag(name, 2, "reviewed", True)
    assert client.get_model_version(name, 2).tags == {"reviewed": "True"}
    client.delete_model_version_tag(name, 2, "reviewed")
    client.set_registered_model_tag(name, "owner", "ana")
    client.delete_registered_model_tag(name, "team")
    assert client.get_registered_model(name).tags == {"owner": "ana"}
    assert client.update_registered_model(name, description="RAG").description == "RAG"

    assert [m.name for m in client.search_registered_models(f"name = '{name}'")] == [name]
    assert [m.name for m in client.search_registered_models("tags.team = 'search' AND name = '" + other + "'")] == [
        other]
    page, token = client.store.search_registered_models(f"name LIKE '{name}%'", max_results=1)
    assert [m.name for m in page] == [name] and token is None
    assert [v.version for v in client.search_model_versions(f"run_id = '{first.run_id}'")] == [1]
    assert [v.version for v in client.search_model_versions(f"name = '{name}'", order_by="version ASC")] == [1, 2]

    client.transition_model_version_stage(name, 1, "production")
    client.transition_model_version_stage(name, 2, "Staging")
    assert {v.current_stage: v.version for v in client.get_latest_versions(name)} == {"Production": 1, "Staging": 2}
    assert [v.version for v in client.get_latest_versions(name, "Staging")] == [2]
    client.set_registered_model_alias(name, "champion", 2)
    assert client.get_model_version_by_alias(name, "champion").version == 2
    client.delete_registered_model_alias(name, "champion")
    assert client.get_registered_model(name).aliases == {}
    assert [e.to_value for e in client.get_model_version_history(name, 2)] == ["Staging", "2", None]

    renamed = client.rename_registered_model(name, name + "-v2")
    assert renamed.name == name + "-v2" and [v.current_stage for v in renamed.latest_versions] == [
        "Staging", "Production"]
    client.delete_model_version(name + "-v2", 1)
    assert [v.version for v in client.search_model_versions(f"name = '{name}-v2'")] == [2]
    client.delete_registered_model(name + "-v2")
    client.delete_registered_model(other)
    with pytest.raises(ek.NotFound, match="no registered model named"):
        client.get_registered_model(other)


def test_the_server_reads_the_bundle_hash_from_the_manifest(on_server):
    name = unique("Checked")
    info = logged_bundle()
    store = TrackingClient().store.inner
    store.create_registered_model(name)
    with pytest.raises(ek.InvalidArgument, match=f"bundle_hash '{'0' * 64}' does not match the bundle at "
                                                 f"{info.model_uri}, whose manifest says '{info.bundle_hash}'"):
        store.create_model_version(name, info.model_uri, "0" * 64, "llm")
    with pytest.raises(ek.InvalidArgument, match="flavor 'transformers' does not match"):
        store.create_model_version(name, info.model_uri, info.bundle_hash, "transformers")
    with pytest.raises(ek.InvalidArgument, match="has no model at 'elsewhere'"):
        store.create_model_version(name, f"runs:/{info.run_id}/elsewhere", info.bundle_hash, "llm")
    # Without a hash the server's reading is recorded, with the run the source names.
    version = store.create_model_version(name, info.model_uri, None, None)
    assert (version.version, version.bundle_hash, version.flavor, version.run_id) == (
        1, info.bundle_hash, "llm", info.run_id)
    # A source the server does not read needs the client's hash and flavor.
    with pytest.raises(ek.InvalidArgument, match="is not a runs:/ URI.*send bundle_hash and flavor"):
        store.create_model_version(name, "s3://bucket/bundle", None, None)
    assert store.create_model_version(name, "s3://bucket/bundle", "a" * 64, "llm").bundle_hash == "a" * 64
    assert [v.version for v in store.search_model_versions(f"name = '{name}'")] == [2, 1]


def test_a_retried_registry_write_is_applied_once(on_server):
    name = unique("Once")
    info = logged_bundle()
    TrackingClient().create_registered_model(name)
    body = {"name": name, "source": info.model_uri}
    headers = {IDEMPOTENCY_HEADER: uuid.uuid4().hex}
    answers = [httpx.post(f"{on_server}/api/v1/model-versions", json=body, headers=headers) for _ in range(2)]
    assert [(a.status_code, a.json()["version"]) for a in answers] == [(201, 1), (201, 1)]
    move = {"name": name, "version": 1, "stage": "Production"}
    headers = {IDEMPOTENCY_HEADER: uuid.uuid4().hex}
    for _ in range(2):
        assert httpx.post(f"{on_server}/api/v1/model-versions/transition-stage", json=move,
                          headers=headers).status_code == 200
    client = TrackingClient()
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == [1]
    assert len(client.get_model_version_history(name)) == 1


def test_promotion_that_requires_evidence_through_the_server(on_server):
    name = unique("Guarded")
    client = TrackingClient()
    first, second = logged_bundle({"top_k": 5}), logged_bundle({"top_k": 3})
    client.create_registered_model(name, evidence_required=["Production", "@champion"])
    ek.register_model(first.model_uri, name)
    ek.register_model(second.model_uri, name)
    with pytest.raises(ek.InvalidState, match=f"requires evidence.*evalkit models promote {name} 1 --to Production"):
        client.transition_model_version_stage(name, 1, "Production")
    with pytest.raises(ek.InvalidState, match="not this version's bundle"):
        client.transition_model_version_stage(name, 1, "Production", evidence_run_id=suite_run(second.bundle_hash))
    with pytest.raises(ek.InvalidState, match="did not pass"):
        client.set_registered_model_alias(name, "champion", 1, evidence_run_id=suite_run(first.bundle_hash, "failed"))
    assert client.get_model_version(name, 1).current_stage == "None"
    assert [e.kind for e in client.get_model_version_history(name)] == ["evidence_rule"]

    evidence = suite_run(first.bundle_hash)
    assert client.transition_model_version_stage(name, 1, "Production", evidence_run_id=evidence).current_stage == (
        "Production")
    client.set_registered_model_alias(name, "champion", 1, evidence_run_id=evidence)
    assert [(e.to_value, e.evidence_run_id) for e in client.get_model_version_history(name)[-2:]] == [
        ("Production", evidence), ("1", evidence)]


def bad_calls(name: str) -> list:
    return [
        lambda c: c.get_registered_model(name + "-nope"),
        lambda c: c.get_model_version(name, 9),
        lambda c: c.get_model_version(name, "two"),
        lambda c: c.get_model_version(name, 0),
        lambda c: c.get_model_version(name + "-nope", 1),
        lambda c: c.transition_model_version_stage(name, 1, "Prod"),
        lambda c: c.transition_model_version_stage(name, 5, "Staging"),
        lambda c: c.transition_model_version_stage(name, 1, "Archived", archive_existing_versions=True),
        lambda c: c.transition_model_version_stage(name, 1, "Production"),  # evidence required
        lambda c: c.transition_model_version_stage(name, 1, "Production", evidence_run_id="nope"),
        lambda c: c.set_registered_model_alias(name, "3", 1),
        lambda c: c.set_registered_model_alias(name, "v2", 1),
        lambda c: c.set_registered_model_alias(name, "latest", 1),
        lambda c: c.set_registered_model_alias(name, "champ ion", 1),
        lambda c: c.set_registered_model_alias(name, "champion", 7),
        lambda c: c.get_model_version_by_alias(name, "champion"),
        lambda c: c.get_model_version_by_alias(name, "3"),
        lambda c: c.delete_registered_model_alias(name, "champion"),
        lambda c: c.create_registered_model(name),
        lambda c: c.create_registered_model("a/b"),
        lambda c: c.create_registered_model("x", tags={"bad key!": 1}),
        lambda c: c.create_registered_model("x", evidence_required=["Prod"]),
        lambda c: c.create_registered_model("x", evidence_required="Production"),
        lambda c: c.create_registered_model("x", evidence_required=["@7"]),
        lambda c: c.rename_registered_model(name, "a@b"),
        lambda c: c.delete_model_version_tag(name, 1, "nope"),
        lambda c: c.delete_registered_model_tag(name, "nope"),
        lambda c: c.update_model_version(name, 1, "x" * 5001),
        lambda c: c.search_registered_models("name ~ 'x'"),
        lambda c: c.search_registered_models("owner = 'x'"),
        lambda c: c.search_registered_models(order_by=["size"]),
        lambda c: c.search_model_versions("stage = 'x'"),
        lambda c: c.get_latest_versions(name, ["Prod"]),
        lambda c: c.create_model_version(name, "runs:/nope/model"),
        lambda c: c.get_model_version_history(name, "v1"),
    ]


def test_bad_input_gets_the_same_errors_as_on_sqlite(on_server, tmp_path):
    name = unique("Strict")

    def seeded(uri: str) -> TrackingClient:
        ek.set_tracking_uri(uri)
        ek.set_experiment(unique("strict"))
        client = TrackingClient()
        client.create_registered_model(name, evidence_required=["Production"])
        ek.register_model(logged_bundle().model_uri, name)
        return client

    def outcomes(client: TrackingClient) -> list[tuple[str, str]]:
        found = []
        for call in bad_calls(name):
            with pytest.raises(ek.EvalkitError) as caught:
                call(client)
            found.append((caught.value.code, str(caught.value)))  # a FilterSyntaxError travels as INVALID_ARGUMENT
        return found

    local = seeded(f"sqlite:///{tmp_path / 'local.db'}")
    expected = outcomes(local)
    remote = seeded(on_server)
    before = (remote.get_registered_model(name), remote.search_model_versions(f"name = '{name}'"),
              remote.get_model_version_history(name))
    assert outcomes(remote) == expected
    assert (remote.get_registered_model(name), remote.search_model_versions(f"name = '{name}'"),
            remote.get_model_version_history(name)) == before
    assert ("INVALID_ARGUMENT", "alias '3' looks like a version number; an alias is a name such as 'champion' "
            "(models:/<name>/<version> already names versions by number)") in expected


def test_the_models_cli_against_a_server(on_server):
    name = unique("CliBot")
    ek.register_model(logged_bundle().model_uri, name)
    client = TrackingClient()
    client.transition_model_version_stage(name, 1, "Production")
    client.set_registered_model_alias(name, "champion", 1)
    runner = CliRunner()

    listed = runner.invoke(cli, ["--tracking-uri", on_server, "models", "list", "--filter", f"name = '{name}'",
                                 "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(m["name"], m["aliases"]) for m in json.loads(listed.output)] == [(name, {"champion": 1})]
    shown = runner.invoke(cli, ["--tracking-uri", on_server, "models", "show", name])
    assert shown.exit_code == 0, shown.output
    assert "Production" in shown.output and "@champion" in shown.output
    history = runner.invoke(cli, ["--tracking-uri", on_server, "models", "history", name, "--json"])
    assert history.exit_code == 0, history.output
    assert [(e["kind"], e["to_value"]) for e in json.loads(history.output)] == [("stage", "Production"),
                                                                                 ("alias", "1")]
    missing = runner.invoke(cli, ["--tracking-uri", on_server, "models", "show", name + "-nope"])
    assert missing.exit_code != 0 and f"no registered model named '{name}-nope'" in str(missing.exception or
                                                                                       missing.output)


# ---- roles: a server with tokens (uvicorn in a thread, like the auth tests) ----------------------


@dataclass
class AuthServer:
    url: str
    tokens: TokenStore

    def token(self, role: str) -> tuple[str, str]:
        name = unique(role)
        return name, self.tokens.create(name, role)[1]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[AuthServer]:
    folder = tmp_path_factory.mktemp("registry-auth")
    database = folder / "server.db"
    app = create_app(ServerConfig(f"sqlite:///{database}", str(folder / "artifacts"), auth_enabled=True,
                                  access_log=False))
    tokens = TokenStore.open(str(database))
    with serve_in_thread(app) as url:
        yield AuthServer(url, tokens)
    tokens.engine.dispose()


def test_readers_read_the_registry_and_only_editors_change_it(auth_server, monkeypatch, tmp_path):
    editor, editor_token = auth_server.token("editor")
    _, reader_token = auth_server.token("reader")
    name = unique("Guarded")
    ek.set_tracking_uri(auth_server.url)
    monkeypatch.setenv(TOKEN_ENV, editor_token)
    info = logged_bundle()
    client = TrackingClient()
    ek.register_model(info.model_uri, name)
    client.transition_model_version_stage(name, 1, "Staging")
    client.set_registered_model_alias(name, "champion", 1)

    monkeypatch.setenv(TOKEN_ENV, reader_token)
    reader = TrackingClient()
    assert reader.get_registered_model(name).aliases == {"champion": 1}
    assert [m.name for m in reader.search_registered_models(f"name = '{name}'")] == [name]
    assert reader.get_model_version_by_alias(name, "champion").version == 1
    assert [v.version for v in reader.get_latest_versions(name, ["Staging"])] == [1]
    assert [v.version for v in reader.search_model_versions(f"name = '{name}'")] == [1]
    assert ek.load_model(f"models:/{name}@champion").spec.model_uri == "evalkit:/extractive"
    history = reader.get_model_version_history(name)
    assert [(e.to_value, e.user_id) for e in history] == [("Staging", editor), ("1", editor)]
    writes = [
        lambda: reader.create_registered_model(unique("Nope")),
        lambda: reader.create_model_version(name, info.model_uri),
        lambda: reader.transition_model_version_stage(name, 1, "Production"),
        lambda: reader.set_registered_model_alias(name, "other", 1),
        lambda: reader.delete_registered_model_alias(name, "champion"),
        lambda: reader.set_registered_model_tag(name, "k", "v"),
        lambda: reader.update_model_version(name, 1, "mine"),
        lambda: reader.delete_model_version(name, 1),
        lambda: reader.delete_registered_model(name),
    ]
    for write in writes:
        with pytest.raises(PermissionDenied):
            write()
    answer = httpx.post(f"{auth_server.url}/api/v1/model-versions/transition-stage",
                        json={"name": name, "version": 1, "stage": "Production"},
                        headers={"Authorization": f"Bearer {reader_token}"})
    assert (answer.status_code, answer.json()["error_code"]) == (403, "PERMISSION_DENIED")
    assert reader.get_model_version(name, 1).current_stage == "Staging"
    assert reader.get_model_version_history(name) == history


def test_history_records_the_tokens_user_whatever_the_client_claims(auth_server, monkeypatch):
    editor, editor_token = auth_server.token("editor")
    name = unique("Who")
    ek.set_tracking_uri(auth_server.url)
    monkeypatch.setenv(TOKEN_ENV, editor_token)
    ek.register_model(logged_bundle().model_uri, name)
    answer = httpx.post(f"{auth_server.url}/api/v1/model-versions/transition-stage",
                        json={"name": name, "version": 1, "stage": "Staging"},
                        headers={"Authorization": f"Bearer {editor_token}", "X-Evalkit-User": "someone-else"})
    assert answer.status_code == 200, answer.text
    version = TrackingClient().get_model_version(name, 1)
    event, = TrackingClient().get_model_version_history(name)
    assert (event.user_id, version.user_id) == (editor, editor)


def test_one_documented_route_per_registry_operation(on_server):
    paths = httpx.get(f"{on_server}/openapi.json").json()["paths"]
    operations = {operation["operationId"].rsplit("_api_v1", 1)[0] for path, methods in paths.items()
                  if path.startswith(("/api/v1/registered-models", "/api/v1/model-versions"))
                  for operation in methods.values()}
    assert operations == set(REGISTRY_OPERATIONS)
