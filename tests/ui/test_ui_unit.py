"""Fast checks of the UI without a browser: the runs table's paging, sorting, filtering and
columns (through the pages, against the store), the store methods it added, downsampling,
roles and CSRF, escaping and the security headers."""

from __future__ import annotations

import math
import re

import pytest
from fastapi.testclient import TestClient
from memory_store import MemoryStore

from evalkit.entities import Metric, ViewType
from evalkit.errors import InvalidArgument
from evalkit.tracking.downsample import downsample
from evalkit.ui.runs_query import Column, RunsQuery, parse_column

pytest.register_assert_rewrite("ui_fixtures")
from ui_fixtures import Principal, ui_app
from ui_seed import SWEEP_RUNS, XSS, experiment_name

pytest_plugins = ["ui_fixtures"]



def run_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run="([0-9a-f]+)"', html)


# ---- store methods ---------------------------------------------------------------------------


def test_count_runs_and_run_stats_match_the_search(seeded_store):
    seeded, store = seeded_store
    sweep = seeded.experiments["sweep"]
    assert store.count_runs([sweep]) == SWEEP_RUNS
    runs, _ = store.search_runs([sweep], "params.lr = '0.1'", max_results=1000)
    assert store.count_runs([sweep], "params.lr = '0.1'") == len(runs) == SWEEP_RUNS // 3
    stats = store.run_stats([sweep, seeded.experiments["rag-eval"]])
    assert stats[sweep].run_count == SWEEP_RUNS
    assert stats[sweep].last_activity == max(r.info.end_time for r in store.search_runs([sweep], max_results=1000)[0])


def test_search_keys_are_distinct_sorted_limited_and_searchable(seeded_store):
    seeded, store = seeded_store
    sweep = seeded.experiments["sweep"]
    assert store.search_keys([sweep], "metric") == ["accuracy", "loss"]
    assert store.search_keys([sweep], "param", max_results=1) == ["batch"]
    assert store.search_keys([sweep], "tag", contains="TEA") == ["team"]
    assert store.search_keys([seeded.experiments["rag-eval"]], "metric", contains="f1/v1/m") == ["token_f1/v1/mean"]
    with pytest.raises(InvalidArgument, match="unknown key entity 'column'"):
        store.search_keys([sweep], "column")


def test_metric_histories_of_many_runs_match_one_by_one(seeded_store):
    _, store = seeded_store
    seeded = seeded_store[0]
    runs = seeded.sweep_runs[:5]
    histories = store.get_metric_histories([*runs, seeded.xss_run], "loss")
    assert {r: histories[r] for r in runs} == {r: store.get_metric_history(r, "loss") for r in runs}
    assert len(histories[runs[0]]) == 40 and histories[seeded.xss_run] == []


def test_memory_store_keeps_the_same_contract():
    store = MemoryStore()
    experiment = store.create_experiment("e")
    run = store.create_run(experiment)
    store.log_batch(run.info.run_id, metrics=[Metric("b", 1.0, 0, 0), Metric("a", 2.0, 0, 0)])
    assert store.search_keys([experiment], "metric") == ["a", "b"]
    assert store.count_runs([experiment]) == 1
    assert store.run_stats([experiment])[experiment].run_count == 1
    store.delete_run(run.info.run_id)
    assert store.count_runs([experiment]) == 0 and store.count_runs([experiment], view_type=ViewType.ALL) == 1
    assert store.get_metric_histories([run.info.run_id], "a")[run.info.run_id][0].value == 2.0


def test_downsample_keeps_extremes_within_bounds():
    history = [Metric("m", math.sin(i / 50) + (5.0 if i == 777 else 0.0), i, i) for i in range(10_000)]
    kept, total = downsample(history, 200)
    assert len(kept) <= 200 and total == 10_000
    assert any(m.step == 777 for m in kept)  # the spike survives
    assert [m.step for m in kept] == sorted(m.step for m in kept)
    assert downsample(history[:50], 200) == (history[:50], 50)


# ---- the runs table --------------------------------------------------------------------------


def test_query_round_trips_through_its_url():
    query = RunsQuery.from_params({"filter": ["params.lr = '0.1'"], "order": ["metrics.`loss`"], "dir": ["asc"],
                                   "col": ["metrics.loss", "params.lr", "bogus"], "cols": ["1"], "size": ["25"]}, ["1"])
    assert query.columns == [Column("metric", "loss"), Column("param", "lr")]
    assert query.order_by() == ["metrics.`loss` ASC"]
    again = RunsQuery.from_params({k: [v for kk, v in query.params() if kk == k] for k, _ in query.params()}, ["1"])
    assert again == query
    assert parse_column("tags.a.b") == Column("tag", "a.b")
    assert "dir=desc" in query.sort_url("/runs", "attributes.run_name")
    assert "dir=desc" in query.sort_url("/runs", "metrics.`loss`")  # sorted ascending now: next is descending


def test_pages_walk_every_run_once_in_the_stores_order(http, seeded_store):
    seeded, store = seeded_store
    sweep = seeded.experiments["sweep"]
    expected = [r.info.run_id for r in store.search_runs([sweep], max_results=1000, order_by=["metrics.accuracy ASC"])[0]]
    url, seen = f"/experiments/{sweep}?size=25&order=metrics.accuracy&dir=asc", []
    while url:
        html = http.get(url).text
        seen += run_ids(html)
        found = re.search(r'<a href="([^"]+)" rel="next"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == expected
    first = http.get(f"/experiments/{sweep}?size=25&order=metrics.accuracy&dir=asc").text
    assert "Runs 1–25 of 60" in first


def test_previous_page_returns_to_the_page_before(http, seeded_store):
    seeded, _ = seeded_store
    first = http.get(f"/experiments/{seeded.experiments['sweep']}?size=25").text
    second = http.get(re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")).text
    assert "Runs 26–50 of 60" in second
    back = http.get(re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")).text
    assert run_ids(back) == run_ids(first)


def test_filter_matches_the_store_and_errors_show_the_caret(http, seeded_store):
    seeded, store = seeded_store
    sweep = seeded.experiments["sweep"]
    html = http.get(f"/experiments/{sweep}", params={"filter": "metrics.accuracy >= 0.9 AND tags.team = 'rag'"}).text
    expected = store.search_runs([sweep], "metrics.accuracy >= 0.9 AND tags.team = 'rag'", max_results=1000)[0]
    assert sorted(run_ids(html)) == sorted(r.info.run_id for r in expected) and expected
    bad = http.get(f"/experiments/{sweep}", params={"filter": "metrics.accuracy >= "})
    assert bad.status_code == 200 and 'id="filter-error"' in bad.text
    assert "expected a value" in bad.text and "at position 19" in bad.text
    assert "metrics.accuracy &gt;=\n" + " " * 19 + "^</pre>" in bad.text


def test_columns_come_from_the_url_and_default_from_the_store(http, seeded_store):
    seeded, _ = seeded_store
    sweep = seeded.experiments["sweep"]
    default = http.get(f"/experiments/{sweep}").text
    assert "metric · accuracy" in default and "param · lr" in default
    chosen = http.get(f"/experiments/{sweep}?cols=1&col=tags.team").text
    assert "tag · team" in chosen and "metric · accuracy" not in chosen
    chooser = http.get(f"/columns?exp={sweep}&contains=los").text
    assert 'value="metrics.loss"' in chooser and "accuracy" not in chooser


def test_nested_runs_sit_under_their_parent(http, seeded_store):
    seeded, _ = seeded_store
    html = http.get(f"/experiments/{seeded.experiments['rag-eval']}?size=200").text
    order = run_ids(html)
    for night in seeded.nights:
        children = [p for p in seeded.pairs if p in order and order.index(p) > order.index(night)]
        assert len(children) >= 2
        position = order.index(night)
        assert set(order[position + 1:position + 3]) <= set(seeded.pairs)
    assert html.count('class="depth-1"') == len(seeded.pairs)


# ---- pages, roles, escaping --------------------------------------------------------------------


def test_every_page_answers_with_the_strict_csp(http, seeded_store):
    seeded, _ = seeded_store
    for url in ["/", "/runs", f"/runs/{seeded.eval_runs[0]}", f"/runs/{seeded.xss_run}", "/suites", f"/suites/{seeded.suite}",
                f"/compare?run={seeded.eval_runs[0]}&run={seeded.eval_runs[1]}", f"/runs/{seeded.running_run}/progress"]:
        response = http.get(url)
        assert response.status_code == 200, url
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert "<script>" not in response.text  # no inline script, and every payload escaped


def test_user_strings_are_escaped(http, seeded_store):
    seeded, _ = seeded_store
    html = http.get(f"/runs/{seeded.xss_run}").text + http.get("/").text
    for payload in XSS[:4]:
        assert payload not in html
    assert "&lt;script&gt;window.__xss(2)&lt;/script&gt;" in html


def test_artifacts_are_served_sandboxed(http, seeded_store):
    seeded, _ = seeded_store
    page = http.get(f"/runs/{seeded.xss_run}/artifact", params={"path": "page.html"})
    assert page.headers["content-security-policy"].startswith("sandbox;")
    report = http.get(f"/runs/{seeded.eval_runs[0]}/artifact", params={"path": "report.html"})
    assert report.headers["content-security-policy"].startswith("sandbox allow-scripts;")
    assert http.get(f"/runs/{seeded.xss_run}/artifact", params={"path": "../../ui.db"}).status_code == 400


def test_unknown_run_is_a_404_page(http):
    response = http.get("/runs/0123456789abcdef0123456789abcdef")
    assert response.status_code == 404 and "no run with id" in response.text


def test_results_paging_and_filters_match_the_table(http, seeded_store):
    seeded, store = seeded_store
    from evalkit.tracking.client import TrackingClient

    table = TrackingClient.for_store(store).load_table(seeded.eval_runs[0], "eval_results_table.parquet")
    failed = sorted(int(r) for r in table.loc[table["status"] == "failed", "row"])
    html = http.get(f"/runs/{seeded.eval_runs[0]}/results?failed=1").text
    assert [int(r) for r in re.findall(r'<tr data-row="(\d+)"', html)] == failed
    page2 = http.get(f"/runs/{seeded.eval_runs[0]}/results?page_number=2").text
    assert re.findall(r'<tr data-row="(\d+)"', page2) == [] or "page 1 of 1" in page2
    detail = http.get(f"/runs/{seeded.eval_runs[0]}/results/{failed[0]}").text
    assert "backend exploded" in detail


def test_readers_see_no_controls_and_cannot_change_anything(seeded_store):
    seeded, store = seeded_store
    app = ui_app(store, seeded.artifact_root, Principal("ci", "reader"))
    with TestClient(app) as client:
        page = client.get("/").text
        assert 'action="/experiments"' not in page and "ci · reader" in page
        response = client.post("/experiments", data={"name": "nope"})
        assert response.status_code == 403 and store.get_experiment_by_name("nope") is None


def test_editors_create_rename_and_delete_with_the_csrf_token_embedded(seeded_store):
    seeded, store = seeded_store
    app = ui_app(store, seeded.artifact_root, Principal("ed", "editor"), csrf_token="tok-123")
    with TestClient(app) as client:
        page = client.get("/").text
        assert 'name="csrf_token" value="tok-123"' in page and "hx-headers='{\"X-CSRF-Token\": \"tok-123\"}'" in page
        assert client.post("/experiments", data={"name": "made-in-ui", "csrf_token": "tok-123"},
                           follow_redirects=False).status_code == 303
        experiment = store.get_experiment_by_name("made-in-ui")
        client.post(f"/experiments/{experiment.experiment_id}/rename", data={"name": "renamed-in-ui"})
        assert store.get_experiment(experiment.experiment_id).name == "renamed-in-ui"
        taken = client.post(f"/experiments/{experiment.experiment_id}/rename", data={"name": experiment_name("sweep")})
        assert taken.status_code == 409 and "already" in taken.text
        client.post(f"/experiments/{experiment.experiment_id}/delete")
        assert store.get_experiment(experiment.experiment_id).lifecycle_stage.value == "deleted"
