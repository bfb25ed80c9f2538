"""The registry through TrackingClient on SQLite and PostgreSQL: versions, stages, aliases,
history, the evidence rule, searches, and bad input refused with nothing half-written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

import evalkit as ek
from evalkit.cli.main import cli
from evalkit.entities import ModelVersion, ModelVersionEvent, RegisteredModel
from evalkit.models.history import state_at
from evalkit.suite import tags as suite_tags
from evalkit.tracking.registry import BUNDLE_HASH_PARAM

FIXTURES = Path(__file__).resolve().parents[1] / "data"


def logged_bundle(retrieval: dict | None = None) -> ek.ModelInfo:
    with ek.start_run():
        return ek.log_model("evalkit:/extractive", retrieval=retrieval or {})


def suite_run(bundle: str, status: str = "passed", run_status: str = "FINISHED", role: str = "parent") -> str:
    """A run shaped like the nightly job's: a parent tagged with the suite's status, and a pair
    child that records the bundle it evaluated."""
    client = ek.TrackingClient()
    experiment = client.get_or_create_default_experiment()
    parent = client.create_run(experiment, tags={suite_tags.ROLE: "parent", suite_tags.STATUS: status})
    child = client.create_run(experiment, parent_run_id=parent.info.run_id,
                              tags={suite_tags.ROLE: "pair", suite_tags.STATUS: status})
    client.log_param(child.info.run_id, BUNDLE_HASH_PARAM, bundle)
    client.set_terminated(child.info.run_id, run_status)
    client.set_terminated(parent.info.run_id, run_status)
    return parent.info.run_id if role == "parent" else child.info.run_id


@pytest.fixture
def two_versions(tracking_uri):
    first, second = logged_bundle({"top_k": 5}), logged_bundle({"top_k": 3})
    ek.register_model(first.model_uri, "RAGBot", tags={"team": "nlp"})
    ek.register_model(second.model_uri, "RAGBot")
    return ek.TrackingClient(), first, second


def test_versions_stages_and_aliases(two_versions):
    client, first, second = two_versions
    one = client.get_model_version("RAGBot", 1)
    assert (one.version, one.current_stage, one.bundle_hash, one.flavor, one.run_id, one.tags) == (
        1, "None", first.bundle_hash, "llm", first.run_id, {"team": "nlp"})
    assert client.update_model_version("RAGBot", "1", "top_k 5").description == "top_k 5"
    client.transition_model_version_stage("RAGBot", 1, "Production")
    client.transition_model_version_stage("RAGBot", 2, "staging")
    moved = client.transition_model_version_stage("RAGBot", 2, "PRODUCTION", archive_existing_versions=True)
    assert moved.current_stage == "Production"
    assert client.get_model_version("RAGBot", 1).current_stage == "Archived"
    assert [v.version for v in client.get_latest_versions("RAGBot", ["Production"])] == [2]
    assert {v.current_stage: v.version for v in client.get_latest_versions("RAGBot")} == {"Production": 2,
                                                                                          "Archived": 1}
    client.set_registered_model_alias("RAGBot", "champion", 1)
    client.set_registered_model_alias("RAGBot", "champion", 2)
    assert client.get_model_version_by_alias("RAGBot", "champion").version == 2
    model = client.get_registered_model("RAGBot")
    assert model.aliases == {"champion": 2} and client.get_model_version("RAGBot", 2).aliases == ["champion"]
    # Loading by stage, version and alias gives the version's bundle.
    assert ek.load_model("models:/RAGBot/Production").spec.retrieval == {"top_k": 3}
    assert ek.load_model("models:/RAGBot@champion").spec.retrieval == {"top_k": 3}
    assert ek.load_model("models:/RAGBot/1").spec.retrieval == {"top_k": 5}
    assert ek.load_model("models:/RAGBot/latest").spec.retrieval == {"top_k": 3}


def test_every_stage_transition_and_alias_move_is_in_the_history(two_versions, tracking_uri):
    client, _, _ = two_versions
    client.transition_model_version_stage("RAGBot", 1, "Production")
    client.set_registered_model_alias("RAGBot", "champion", 1)
    client.transition_model_version_stage("RAGBot", 2, "Production", archive_existing_versions=True)
    client.set_registered_model_alias("RAGBot", "champion", 2)
    client.delete_registered_model_alias("RAGBot", "champion")
    events = client.get_model_version_history("RAGBot")
    assert [(e.kind, e.alias, e.version, e.from_value, e.to_value) for e in events] == [
        ("stage", None, 1, "None", "Production"),
        ("alias", "champion", 1, None, "1"),
        ("stage", None, 1, "Production", "Archived"),
        ("stage", None, 2, "None", "Production"),
        ("alias", "champion", 2, "1", "2"),
        ("alias", "champion", 2, "2", None),
    ]
    assert all(e.user_id and e.timestamp > 0 for e in events)
    assert [e.to_value for e in client.get_model_version_history("RAGBot", 1)] == ["Production", "1", "Archived", "2"]
    # Which version was in Production at a given time, and where the alias pointed.
    then = state_at(events, events[1].timestamp)
    assert (then.in_stage("Production"), then.aliases) == ([1], {"champion": 1})
    now = state_at(events, events[-1].timestamp)
    assert (now.in_stage("Production"), now.in_stage("Archived"), now.aliases) == ([2], [1], {})
    day = datetime.fromtimestamp(events[-1].timestamp / 1000, tz=timezone.utc)
    shown = CliRunner().invoke(cli, ["--tracking-uri", tracking_uri, "models", "history", "RAGBot", "--json", "--at", f"{day:%Y-%m-%d}"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["stages"] == {"Staging": "-", "Production": "v2", "Archived": "v1"}


def test_promotion_that_requires_evidence(two_versions):
    client, first, second = two_versions
    client.update_registered_model("RAGBot", evidence_required=["production", "@champion"])
    assert client.get_registered_model("RAGBot").evidence_required == ["Production", "@champion"]
    before = client.get_model_version_history("RAGBot")
    with pytest.raises(ek.InvalidState, match="requires evidence.*evalkit models promote RAGBot 1 --to Production"):
        client.transition_model_version_stage("RAGBot", 1, "Production")
    with pytest.raises(ek.InvalidState, match="evaluated .*not this version's bundle"):
        client.transition_model_version_stage("RAGBot", 1, "Production", evidence_run_id=suite_run(second.bundle_hash))
    with pytest.raises(ek.InvalidState, match="did not pass \\(suite status: failed\\)"):
        client.set_registered_model_alias("RAGBot", "champion", 1,
                                          evidence_run_id=suite_run(first.bundle_hash, status="failed"))
    with pytest.raises(ek.InvalidState, match="is FAILED, not FINISHED"):
        client.transition_model_version_stage("RAGBot", 1, "Production",
                                              evidence_run_id=suite_run(first.bundle_hash, run_status="FAILED"))
    with pytest.raises(ek.InvalidState, match="not a run of the nightly job"):
        client.transition_model_version_stage("RAGBot", 1, "Production", evidence_run_id=first.run_id)
    with pytest.raises(ek.NotFound, match="evidence run 'nope' does not exist"):
        client.transition_model_version_stage("RAGBot", 1, "Production", evidence_run_id="nope")
    # Nothing moved, nothing was recorded.
    assert client.get_model_version("RAGBot", 1).current_stage == "None"
    assert client.get_registered_model("RAGBot").aliases == {}
    assert client.get_model_version_history("RAGBot") == before
    # Staging needs no evidence; a passing suite run (or its pair run) on exactly this bundle does it.
    client.transition_model_version_stage("RAGBot", 1, "Staging")
    evidence = suite_run(first.bundle_hash)
    client.transition_model_version_stage("RAGBot", 1, "Production", evidence_run_id=evidence)
    client.set_registered_model_alias("RAGBot", "champion", 1,
                                      evidence_run_id=suite_run(first.bundle_hash, role="pair"))
    recorded = client.get_model_version_history("RAGBot")[-2:]
    assert [(e.to_value, e.evidence_run_id is not None) for e in recorded] == [("Production", True), ("1", True)]
    assert recorded[0].evidence_run_id == evidence
    # Dropping the rule is itself recorded.
    client.update_registered_model("RAGBot", evidence_required=[])
    last = client.get_model_version_history("RAGBot")[-1]
    assert (last.kind, last.from_value, last.to_value) == ("evidence_rule", "Production,@champion", None)


BAD_INPUT = [
    (lambda c: c.get_registered_model("Nope"), ek.NotFound, "no registered model named 'Nope'"),
    (lambda c: c.get_model_version("RAGBot", 9), ek.NotFound, "has no version 9 \\(its versions: 1, 2\\)"),
    (lambda c: c.get_model_version("RAGBot", "two"), ek.InvalidArgument, "positive integer such as 3"),
    (lambda c: c.get_model_version("RAGBot", 0), ek.InvalidArgument, "count from 1"),
    (lambda c: c.transition_model_version_stage("RAGBot", 1, "Prod"), ek.InvalidArgument,
     "unknown stage 'Prod': use one of None, Staging, Production, Archived"),
    (lambda c: c.transition_model_version_stage("RAGBot", 1, "Archived", archive_existing_versions=True),
     ek.InvalidArgument, "applies to Staging and Production"),
    (lambda c: c.set_registered_model_alias("RAGBot", "3", 1), ek.InvalidArgument, "looks like a version number"),
    (lambda c: c.set_registered_model_alias("RAGBot", "v2", 1), ek.InvalidArgument, "looks like a version number"),
    (lambda c: c.set_registered_model_alias("RAGBot", "latest", 1), ek.InvalidArgument, "reserved"),
    (lambda c: c.set_registered_model_alias("RAGBot", "champ ion", 1), ek.InvalidArgument, "letters, digits"),
    (lambda c: c.set_registered_model_alias("RAGBot", "champion", 7), ek.NotFound, "has no version 7"),
    (lambda c: c.get_model_version_by_alias("RAGBot", "champion"), ek.NotFound, "has no alias 'champion'"),
    (lambda c: c.delete_registered_model_alias("RAGBot", "champion"), ek.NotFound, "has no alias 'champion'"),
    (lambda c: c.create_registered_model("RAGBot"), ek.AlreadyExists, "already exists"),
    (lambda c: c.create_registered_model("a/b"), ek.InvalidArgument, "may not contain '/'"),
    (lambda c: c.create_registered_model("x", tags={"bad key!": 1}), ek.InvalidArgument, "tag key 'bad key!'"),
    (lambda c: c.create_registered_model("x", evidence_required=["Prod"]), ek.InvalidArgument, "unknown stage"),
    (lambda c: c.create_registered_model("x", evidence_required="Production"), ek.InvalidArgument, "is a list"),
    (lambda c: c.delete_model_version_tag("RAGBot", 1, "nope"), ek.NotFound, "has no tag 'nope'"),
    (lambda c: c.search_registered_models("name ~ 'x'"), ek.FilterSyntaxError, "expected <key>"),
    (lambda c: c.search_registered_models("owner = 'x'"), ek.FilterSyntaxError, "unknown key 'owner'"),
    (lambda c: c.search_registered_models(order_by=["size"]), ek.InvalidArgument, "order_by clause 'size'"),
    (lambda c: c.create_model_version("RAGBot", "runs:/nope/model"), ek.NotFound, "no run with id 'nope'"),
    (lambda c: ek.load_model("models:/RAGBot/Production"), ek.NotFound, "no version .* is in stage Production"),
    (lambda c: ek.load_model("models:/RAGBot/v1"), ek.InvalidArgument, "neither a version number"),
]


def test_bad_input_is_a_clear_error_and_nothing_is_written(two_versions):
    client, _, _ = two_versions

    def state() -> tuple:
        return (client.get_registered_model("RAGBot"), client.search_model_versions(),
                client.get_model_version_history("RAGBot"), client.search_registered_models())

    before = state()
    for call, error, message in BAD_INPUT:
        with pytest.raises(error, match=message):
            call(client)
        assert state() == before, message


def test_search_rename_tags_and_deletes(two_versions):
    client, first, _ = two_versions
    client.create_registered_model("other", tags={"team": "search"}, description="bm25")
    client.set_registered_model_tag("RAGBot", "team", "nlp")
    assert [m.name for m in client.search_registered_models("tags.team = 'nlp'")] == ["RAGBot"]
    assert [m.name for m in client.search_registered_models("name ILIKE 'rag%'")] == ["RAGBot"]
    assert [m.name for m in client.search_registered_models(order_by=["name DESC"])] == ["other", "RAGBot"]
    assert [v.version for v in client.search_model_versions(f"run_id = '{first.run_id}'")] == [1]
    client.set_model_version_tag("RAGBot", 2, "reviewed", "yes")
    assert [v.version for v in client.search_model_versions("name = 'RAGBot' AND tags.reviewed = 'yes'")] == [2]
    client.transition_model_version_stage("RAGBot", 1, "Production")
    client.set_registered_model_alias("RAGBot", "champion", 1)
    renamed = client.rename_registered_model("RAGBot", "RAGBot2")
    assert renamed.aliases == {"champion": 1} and ek.load_model("models:/RAGBot2@champion") is not None
    with pytest.raises(ek.AlreadyExists):
        client.rename_registered_model("RAGBot2", "other")
    client.delete_model_version("RAGBot2", 1)
    assert client.get_registered_model("RAGBot2").aliases == {}
    # A deleted version's number is never given again, and its history stays.
    assert ek.register_model(first.model_uri, "RAGBot2").version == 3
    assert [e.kind for e in client.get_model_version_history("RAGBot2", 1)] == ["stage", "alias", "alias", "deleted"]
    client.delete_registered_model("other")
    assert [m.name for m in client.search_registered_models()] == ["RAGBot2"]


def test_registry_records_survive_the_wire_format(two_versions):
    client, _, _ = two_versions
    client.transition_model_version_stage("RAGBot", 1, "Staging")
    client.set_registered_model_alias("RAGBot", "champion", 1)
    model = client.get_registered_model("RAGBot")
    assert RegisteredModel.from_dict(model.to_dict()) == model
    version = client.get_model_version("RAGBot", 1)
    assert ModelVersion.from_dict(version.to_dict()) == version
    for event in client.get_model_version_history("RAGBot"):
        assert ModelVersionEvent.from_dict(event.to_dict()) == event


def test_a_store_written_by_evalkit_0_1_0_gets_a_registry(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(FIXTURES / "store-0.1.0.db", path)
    ek.set_tracking_uri(str(path))
    info = logged_bundle()
    assert ek.register_model(info.model_uri, "FromOldStore").version == 1
    assert ek.TrackingClient().get_experiment_by_name("written-by-0.1.0") is not None


def test_a_store_without_a_registry_says_so():
    from memory_store import MemoryStore

    with pytest.raises(ek.InvalidState, match="memory: holds no model registry"):
        MemoryStore().get_registered_model("x")


def test_the_store_and_a_loaded_llm_model_need_neither_the_suite_nor_the_engine():
    probe = ("import sys, evalkit.tracking.sql.store, evalkit.tracking.rest.store\n"
             "from evalkit.models.flavors.llm import LLMModel, LLMSpec\n"
             "assert len(LLMModel(LLMSpec('evalkit:/extractive')).predict(['hi'])) == 1\n"
             "print(','.join(sorted(m for m in sys.modules if m.startswith(('evalkit.suite', "
             "'evalkit.evaluation.engine')))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""
