"""The model registry's pages without a browser: the models list (filter, inline errors, paging on
the server), a model's and a version's page against the store, "Registered as" on the run page,
escaping, and what editors and readers may do (refusals shown inline, nothing moved): stages,
aliases, descriptions, tags, the evidence rule and deleting a version, each behind the CSRF token."""

from __future__ import annotations

import html as html_lib
import re
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape
from memory_store import MemoryStore

from evalkit.errors import NotFound
from evalkit.server.auth import TokenStore, install_auth
from evalkit.tracking.client import TrackingClient
from evalkit.ui import mount_ui
from evalkit.ui.routes.models import model_url
from evalkit.ui.routes.run import registered_from

pytest.register_assert_rewrite("ui_fixtures")
from ui_fixtures import Principal, ui_app
from ui_seed import XSS, evidence_run, own_model

pytest_plugins = ["ui_fixtures"]



@pytest.fixture(scope="module")
def editor(seeded_store):
    seeded, store = seeded_store
    with TestClient(ui_app(store, seeded.artifact_root, Principal("ed", "editor"), csrf_token="tok-9"),
                    follow_redirects=False) as client:
        yield client


def listed_models(page: str) -> list[str]:
    return [html_lib.unescape(m) for m in re.findall(r'<tr data-model="([^"]*)"', page)]


def test_models_list_shows_each_model_with_its_latest_versions_and_aliases(http, seeded_store):
    seeded, store = seeded_store
    # Other tests' models share the store: each seeded one is found by its name.
    assert listed_models(http.get("/models", params={"filter": "name LIKE '<img%'"}).text) == [seeded.xss_model]
    page = http.get("/models", params={"filter": f"name = '{seeded.model}'"}).text
    assert listed_models(page) == [seeded.model]
    row = page[page.index(f'<tr data-model="{seeded.model}"'):].split("</tr>")[0]
    model = store.get_registered_model(seeded.model)
    for v in model.latest_versions:
        assert f'href="{model_url(seeded.model, v.version)}">v{v.version}</a> <span class="stage' in row
        assert v.current_stage in row
    assert "@champion</span> → v2" in row and "@canary</span> → v3" in row
    assert "The support bot" in row


def test_models_filter_uses_the_registry_grammar_and_shows_errors_inline(http, seeded_store):
    seeded, store = seeded_store
    query = f"name LIKE '{seeded.model[:5]}%' AND tags.team = 'nlp'"
    page = http.get("/models", params={"filter": query}).text
    assert listed_models(page) == [m.name for m in store.search_registered_models(query)[0]] == [seeded.model]
    bad = http.get("/models", params={"filter": "name LIKE 'RAG%' OR name = 'x'"})
    assert bad.status_code == 200 and 'id="filter-error"' in bad.text
    assert "expected AND between conditions" in bad.text and "at position 17" in bad.text
    assert "name LIKE &#39;RAG%&#39; OR name = &#39;x&#39;\n" + " " * 17 + "^</pre>" in bad.text
    unknown = http.get("/models", params={"filter": "stage = 'Production'"}).text
    assert "unknown key &#39;stage&#39;" in unknown


def test_models_are_paged_on_the_server(http, seeded_store):
    seeded, store = seeded_store
    client = TrackingClient.for_store(store)
    prefix = own_model(client, seeded.experiments["registry"], "paged", versions=0)[0]
    names = sorted([prefix] + [client.create_registered_model(f"{prefix}-{i:02d}").name for i in range(29)])
    first = http.get("/models", params={"filter": f"name LIKE '{prefix}%'", "size": "25"})
    assert "Models 1–25" in first.text
    url, seen = str(first.url), []
    while url:
        page = http.get(url).text
        seen += listed_models(page)
        found = re.search(r'<a href="([^"]+)" rel="next"', page)
        url = html_lib.unescape(found.group(1)) if found else None
    assert seen == names
    assert "Models 26–30" in page and 'rel="prev"' in page


def test_model_page_shows_versions_aliases_evidence_rule_and_history(http, seeded_store):
    seeded, store = seeded_store
    page = http.get(model_url(seeded.model)).text
    versions = re.findall(r'<tr data-version="(\d+)"', page.split('id="versions"')[1].split("</table>")[0])
    assert versions == ["3", "2", "1"]
    for v in store.search_model_versions(f"name = '{seeded.model}'"):
        row = page.split(f'<tr data-version="{v.version}">')[1].split("</tr>")[0]
        assert f'<span class="stage {v.current_stage.lower()}">{v.current_stage}</span>' in row
        assert f'href="/runs/{v.run_id}"' in row and v.bundle_hash[:12] in row and "llm" in row
        assert all(f"@{a}" in row for a in v.aliases)
    assert 'id="evidence-rule">Production, @champion' in page
    assert f'class="evidence" href="/runs/{seeded.evidence_runs[0]}"' in page
    history = store.get_model_version_history(seeded.model)
    table = page.split('id="history-table"')[1]
    assert table.count("<tr data-kind=") == len(history)
    assert table.index('data-kind="alias" data-version="3"') < table.index('data-kind="evidence_rule"')  # newest first
    assert 'data-kind="stage" data-version="1"' in table and ">Archived</td>" in table
    assert "top_k 5" in page  # v2's description


def test_version_page_shows_details_and_only_its_history(http, seeded_store):
    seeded, store = seeded_store
    version = store.get_model_version(seeded.model, 2)
    page = http.get(model_url(seeded.model, 2)).text
    assert 'id="version-stage">Production' in page and version.bundle_hash in page
    assert f'class="source-run" href="/runs/{version.run_id}"' in page
    assert "top_k = 5" in page and "@champion" in page
    events = store.get_model_version_history(seeded.model, 2)
    assert page.split('id="history-table"')[1].count("<tr data-kind=") == len(events) == 3
    assert http.get(model_url(seeded.model, 99)).status_code == 404
    assert http.get(model_url("no-such-model")).status_code == 404


def test_run_page_links_the_versions_registered_from_it(http, seeded_store):
    seeded, _ = seeded_store
    page = http.get(f"/runs/{seeded.model_runs[1]}").text
    registered = page.split('id="registered-as">')[1].split("</dd>")[0]
    assert f'href="{model_url(seeded.model, 2)}">{seeded.model} v2</a>' in registered and "@champion" in registered
    first = http.get(f"/runs/{seeded.model_runs[0]}").text.split('id="registered-as">')[1].split("</dd>")[0]
    assert f"{seeded.model} v1" in first and model_url(seeded.xss_model, 1) in first
    assert 'id="registered-as"' not in http.get(f"/runs/{seeded.sweep_runs[0]}").text
    assert registered_from(MemoryStore(), "abc") == []  # a store without a registry: the run page still opens


def test_registry_pages_escape_names_descriptions_and_tags(http, seeded_store):
    seeded, _ = seeded_store
    for url in ["/models", model_url(seeded.xss_model), model_url(seeded.xss_model, 1)]:
        response = http.get(url)
        assert response.status_code == 200, url
        assert "script-src 'self'" in response.headers["content-security-policy"]
        for payload in (XSS[0], XSS[1], XSS[2], XSS[3]):
            assert payload not in response.text, (url, payload)
    page = http.get(model_url(seeded.xss_model)).text
    assert "&lt;script&gt;window.__xss(2)&lt;/script&gt;" in page and str(escape(XSS[0])) in page
    assert model_url(seeded.xss_model) == "/models/%3Cimg%20src%3Dx%20onerror%3D%22window.__xss%281%29%22%3E"


def test_editor_moves_a_stage_with_evidence_and_a_refusal_is_shown_inline(editor, seeded_store):
    seeded, store = seeded_store
    client = TrackingClient.for_store(store)
    name, hashes = own_model(client, seeded.experiments["registry"], "promote", evidence_required=["Production"])
    page = editor.get(model_url(name)).text
    assert 'name="csrf_token" value="tok-9"' in page and 'name="evidence_run_id"' in page

    refused = editor.post(f"{model_url(name, 2)}/stage", data={"stage": "Production", "csrf_token": "tok-9"})
    assert refused.status_code == 409 and 'role="alert"' in refused.text and "requires evidence" in refused.text
    assert store.get_model_version(name, 2).current_stage == "None"
    wrong = evidence_run(client, seeded.experiments["registry"], hashes[0])  # evaluated v1, not v2
    refused = editor.post(f"{model_url(name, 2)}/stage", data={"stage": "Production", "evidence_run_id": wrong,
                                                              "back": "version"})
    assert refused.status_code == 409 and 'id="version-info"' in refused.text and "not this version" in refused.text
    assert [e.kind for e in store.get_model_version_history(name)] == ["evidence_rule"]  # set at creation only

    good = evidence_run(client, seeded.experiments["registry"], hashes[1])
    moved = editor.post(f"{model_url(name, 2)}/stage", data={"stage": "Production", "evidence_run_id": good,
                                                            "archive_existing_versions": "true"})
    assert moved.status_code == 303 and moved.headers["location"].startswith(model_url(name) + "?msg=")
    assert store.get_model_version(name, 2).current_stage == "Production"
    _, event = store.get_model_version_history(name)
    assert (event.kind, event.version, event.from_value, event.to_value, event.user_id, event.evidence_run_id) == (
        "stage", 2, "None", "Production", "ed", good)
    after = editor.get(moved.headers["location"]).text
    assert "Version 2 is now in Production." in after and f'class="evidence" href="/runs/{good}"' in after


def test_editor_sets_and_deletes_an_alias(editor, seeded_store):
    seeded, store = seeded_store
    name, _ = own_model(TrackingClient.for_store(store), seeded.experiments["registry"], "alias")
    bad = editor.post(f"{model_url(name)}/aliases", data={"alias": "v3", "version": "1"})
    assert bad.status_code == 400 and "looks like a version number" in bad.text
    assert editor.post(f"{model_url(name)}/aliases", data={"alias": "canary", "version": "2", "back": "version"}
                       ).headers["location"].startswith(model_url(name, 2) + "?msg=")
    assert store.get_model_version_by_alias(name, "canary").version == 2
    assert editor.post(f"{model_url(name)}/aliases/canary/delete").status_code == 303
    assert store.get_registered_model(name).aliases == {}
    missing = editor.post(f"{model_url(name)}/aliases/canary/delete")
    assert missing.status_code == 404 and "has no alias" in missing.text
    kinds = [(e.alias, e.from_value, e.to_value, e.user_id) for e in store.get_model_version_history(name)]
    assert kinds == [("canary", None, "2", "ed"), ("canary", "2", None, "ed")]


def test_readers_see_no_forms_and_cannot_move_anything(seeded_store):
    seeded, store = seeded_store
    with TestClient(ui_app(store, seeded.artifact_root, Principal("ci", "reader"))) as client:
        for url in [model_url(seeded.model), model_url(seeded.model, 3)]:
            page = client.get(url).text
            assert "<form" not in page.split('<main id="main">')[1], url
        refused = client.post(f"{model_url(seeded.model, 3)}/stage", data={"stage": "Staging"})
        assert refused.status_code == 403
        assert client.post(f"{model_url(seeded.model)}/aliases", data={"alias": "x", "version": "3"}).status_code == 403
        assert client.post(f"{model_url(seeded.model)}/aliases/canary/delete").status_code == 403
        for url, data in edits(seeded.model, 3):
            refused = client.post(url, data=data)
            assert refused.status_code == 403 and "changes need editor or admin" in refused.text, url
    assert store.get_model_version(seeded.model, 3).current_stage == "None"
    model = store.get_registered_model(seeded.model)
    assert model.aliases == {"canary": 3, "champion": 2} and model.evidence_required == ["Production", "@champion"]
    assert model.description.startswith("The support bot") and "x" not in model.tags
    version = store.get_model_version(seeded.model, 3)
    assert "x" not in version.tags and version.description != "x"


def edits(name: str, version: int) -> list[tuple[str, dict[str, str]]]:
    """Every description, tag, evidence-rule and delete form's post, with a valid body."""
    model, v = model_url(name), model_url(name, version)
    return [(f"{model}/description", {"description": "x"}), (f"{v}/description", {"description": "x"}),
            (f"{model}/tags", {"key": "x", "value": "1"}), (f"{model}/tags/delete", {"key": "team"}),
            (f"{v}/tags", {"key": "x", "value": "1"}), (f"{v}/tags/delete", {"key": "top_k"}),
            (f"{model}/evidence-rule", {"targets": "Staging"}), (f"{v}/delete", {"confirm": str(version)})]


def refusal(page: str) -> str:
    """The text of the refusal shown beside a form."""
    return html_lib.unescape(page.split('role="alert">')[1].split("</pre>")[0])


def test_editor_edits_descriptions_and_tags_and_a_refusal_changes_nothing(editor, seeded_store):
    seeded, store = seeded_store
    name, _ = own_model(TrackingClient.for_store(store), seeded.experiments["registry"], "edit")
    page = editor.get(model_url(name)).text
    for form in ('id="description-form"', 'id="tag-form"', 'id="evidence-rule-form"'):
        assert form in page.split('id="model-edit"')[1], form
    version_page = editor.get(model_url(name, 2)).text
    for form in ('id="description-form"', 'id="tag-form"', 'id="delete-version-form"'):
        assert form in version_page, form

    done = editor.post(f"{model_url(name)}/description", data={"description": f"line one\r\n{XSS[1]}"})
    assert done.status_code == 303 and done.headers["location"].startswith(model_url(name) + "?msg=")
    assert store.get_registered_model(name).description == f"line one\n{XSS[1]}"
    assert editor.post(f"{model_url(name, 2)}/description", data={"description": XSS[0]}
                       ).headers["location"].startswith(model_url(name, 2) + "?msg=")
    assert store.get_model_version(name, 2).description == XSS[0]
    assert editor.post(f"{model_url(name)}/tags", data={"key": " team/a ", "value": XSS[2]}).status_code == 303
    assert editor.post(f"{model_url(name, 2)}/tags", data={"key": "judge", "value": XSS[3]}).status_code == 303
    assert store.get_registered_model(name).tags == {"team/a": XSS[2]}
    assert store.get_model_version(name, 2).tags == {"judge": XSS[3]}
    for url in (model_url(name), model_url(name, 2)):
        shown = editor.get(url).text
        assert not any(payload in shown for payload in XSS[:4]), url
    shown = editor.get(model_url(name)).text
    assert f'id="model-description">line one\n{escape(XSS[1])}</dd>' in shown
    assert f'<span class="tag">team/a = {escape(XSS[2])}</span>' in shown
    assert '<input type="hidden" name="key" value="team/a">' in shown  # its delete button's form
    assert f'id="version-description">{escape(XSS[0])}</dd>' in editor.get(model_url(name, 2)).text

    for url, data, status, why in [
            (f"{model_url(name)}/tags", {"key": "", "value": "v"}, 400, "tag key must be a non-empty string"),
            (f"{model_url(name, 2)}/tags", {"key": "judge", "value": "v" * 8001}, 400, "the limit is 8000"),
            (f"{model_url(name)}/tags", {"key": "a=b", "value": "v"}, 400, "contains '='"),
            (f"{model_url(name)}/description", {"description": "d" * 5001}, 400, "at most 5000 characters"),
            (f"{model_url(name, 2)}/description", {"description": "d" * 5001}, 400, "at most 5000 characters"),
            (f"{model_url(name)}/tags/delete", {"key": "nope"}, 404, "has no tag 'nope'"),
            (f"{model_url(name, 2)}/tags/delete", {"key": "nope"}, 404, "has no tag 'nope'")]:
        refused = editor.post(url, data=data)
        assert refused.status_code == status and why in refusal(refused.text), (url, data)
        assert 'class="notice"' not in refused.text
    model, version = store.get_registered_model(name), store.get_model_version(name, 2)
    assert (model.description, model.tags) == (f"line one\n{XSS[1]}", {"team/a": XSS[2]})
    assert (version.description, version.tags) == (XSS[0], {"judge": XSS[3]})

    assert editor.post(f"{model_url(name)}/tags/delete", data={"key": "team/a"}).status_code == 303
    assert editor.post(f"{model_url(name, 2)}/tags/delete", data={"key": "judge"}).status_code == 303
    assert store.get_registered_model(name).tags == {} and store.get_model_version(name, 2).tags == {}


def test_editor_sets_and_clears_the_evidence_rule_and_the_history_records_who(editor, seeded_store):
    seeded, store = seeded_store
    name, _ = own_model(TrackingClient.for_store(store), seeded.experiments["registry"], "rule")
    done = editor.post(f"{model_url(name)}/evidence-rule", data={"targets": "production,  @champion"})
    assert done.status_code == 303
    assert store.get_registered_model(name).evidence_required == ["Production", "@champion"]
    page = editor.get(done.headers["location"]).text
    assert "Evidence is now required for Production, @champion." in page
    assert 'name="targets" size="30" autocomplete="off" value="Production, @champion"' in page
    for targets, why in [("None", "evidence cannot be required to leave a stage"), ("Prod", "unknown stage 'Prod'"),
                         ("@3", "looks like a version number")]:
        refused = editor.post(f"{model_url(name)}/evidence-rule", data={"targets": targets})
        assert refused.status_code == 400 and why in refusal(refused.text), targets
        assert refused.text.index('id="evidence-rule-form"') < refused.text.index('role="alert"')
    assert store.get_registered_model(name).evidence_required == ["Production", "@champion"]
    cleared = editor.post(f"{model_url(name)}/evidence-rule", data={"targets": "Production", "clear": "true"})
    assert "No+stage+or+alias+requires+evidence+now" in cleared.headers["location"]
    assert store.get_registered_model(name).evidence_required == []
    events = [(e.kind, e.from_value, e.to_value, e.user_id) for e in store.get_model_version_history(name)]
    assert events == [("evidence_rule", None, "Production,@champion", "ed"),
                      ("evidence_rule", "Production,@champion", None, "ed")]


def test_editor_deletes_a_version_only_after_typing_its_number(editor, seeded_store):
    seeded, store = seeded_store
    name, _ = own_model(TrackingClient.for_store(store), seeded.experiments["registry"], "delete")
    store.transition_model_version_stage(name, 2, "Production")
    store.set_registered_model_alias(name, "champion", 2)
    page = editor.get(model_url(name, 2)).text.split('id="version-delete"')[1]
    assert "it is in Production now" in page and "its alias <span class=\"alias\">@champion</span> is deleted" in page
    for confirm in ("", "1", "22", "two"):
        refused = editor.post(f"{model_url(name, 2)}/delete", data={"confirm": confirm})
        assert refused.status_code == 400 and "type the version number 2" in refusal(refused.text), confirm
        assert refused.text.index('id="delete-version-form"') < refused.text.index('role="alert"')
    assert store.get_model_version(name, 2).aliases == ["champion"]

    done = editor.post(f"{model_url(name, 2)}/delete", data={"confirm": " 2 "})
    assert done.status_code == 303 and done.headers["location"].startswith(model_url(name) + "?msg=")
    with pytest.raises(NotFound):
        store.get_model_version(name, 2)
    page = editor.get(done.headers["location"]).text
    assert "Deleted version 2 (it was in Production; @champion went with it)." in page
    assert re.findall(r'<tr data-version="(\d+)"', page) == ["1"] and store.get_registered_model(name).aliases == {}
    newest = store.get_model_version_history(name)[-2:]
    assert [(e.kind, e.version, e.from_value, e.to_value, e.user_id) for e in newest] == [
        ("alias", 2, "2", None, "ed"), ("deleted", 2, "Production", None, "ed")]
    assert '<tr data-kind="deleted" data-version="2">' in page and "version deleted" in page
    again = editor.post(f"{model_url(name, 2)}/delete", data={"confirm": "2"})
    assert again.status_code == 404


def test_the_forms_need_the_csrf_token_of_the_signed_in_session(seeded_store):
    seeded, store = seeded_store
    name, _ = own_model(TrackingClient.for_store(store), seeded.experiments["registry"], "csrf")
    app = FastAPI()
    app.state.store, app.state.default_artifact_root = store, seeded.artifact_root
    install_auth(app, engine_or_store_uri=store.engine, enabled=True)
    mount_ui(app)
    _, token = TokenStore.open(store.engine).create(f"ui-forms-{uuid.uuid4().hex[:8]}", "editor")
    with TestClient(app, follow_redirects=False) as client:
        assert client.post("/login", data={"token": token, "next": "/"}).status_code == 303
        page = client.get(model_url(name, 2)).text
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page).group(1)
        for url, data in edits(name, 2):
            for sent in ({}, {"csrf_token": "0" * 64}):
                refused = client.post(url, data={**data, **sent})
                assert refused.status_code == 403 and "CSRF" in refused.text, url
        model, version = store.get_registered_model(name), store.get_model_version(name, 2)
        assert (model.description, model.tags, model.evidence_required) == ("", {}, [])
        assert (version.description, version.tags) == ("", {})
        done = client.post(f"{model_url(name, 2)}/tags", data={"key": "x", "value": "1", "csrf_token": csrf})
        assert done.status_code == 303 and store.get_model_version(name, 2).tags == {"x": "1"}


def test_a_versions_evidence_is_the_run_named_for_its_own_moves():
    from evalkit.entities import ModelVersionEvent
    from evalkit.ui.routes.models import latest_evidence

    events = [ModelVersionEvent("m", "stage", 1, "Staging", "Production", 1, evidence_run_id="e1"),
              ModelVersionEvent("m", "stage", 1, "Production", "Archived", 2, evidence_run_id="e2"),  # archived by v2
              ModelVersionEvent("m", "stage", 2, "Staging", "Production", 2, evidence_run_id="e2"),
              ModelVersionEvent("m", "alias", 3, None, "3", 3, alias="champion", evidence_run_id="e3"),
              ModelVersionEvent("m", "alias", 3, "3", None, 4, alias="champion")]
    assert latest_evidence(events) == {1: "e1", 2: "e2", 3: "e3"}
