"""The web UI in a real browser against a real uvicorn server: every page loads without console
errors or requests leaving 127.0.0.1; filtering, paging, sorting, the column chooser, compare
with "only differences", the results table's filters and row detail are clicked and checked
against the store; XSS payloads in names, params, tags, outputs and artifact names run nothing.
The model registry's pages: links, a stage moved through the form (refused, then with evidence),
payloads in a model's name, description and tags shown as text, a description and tags edited and
a version deleted through their forms, and a reader's view without forms.

Headless Chromium through Playwright (tests/browser.py); skipped where Chromium is missing,
failed instead in CI (EVALKIT_REQUIRE_BROWSER=1). One browser for the module, one server for
the session (tests/ui_fixtures.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from ui_seed import XSS, evidence_run, own_model

from evalkit.tracking.client import TrackingClient

pytest.register_assert_rewrite("browser", "ui_fixtures")
from browser import watch  # noqa: E402 - after registering it for assertion rewriting
from server_fixture import serve_in_thread  # noqa: E402
from ui_fixtures import Principal, ui_app  # noqa: E402

pytest_plugins = ["browser", "ui_fixtures"]
pytestmark = pytest.mark.browser

# Every payload in tests/ui_seed.py calls window.__xss(n): planted before any page script, it
# records the call so the test can see that nothing ran.
PLANT = "window.__xss = function (n) { (window.__xssRan = window.__xssRan || []).push(n); };"
TIMEOUT = 10_000


@pytest.fixture
def ui(browser_context: Any, ui_server: Any) -> Any:
    browser_context.add_init_script(PLANT)
    page = browser_context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.errors = watch(page, ui_server.url)
    page.base = ui_server.url
    return page


def go(page: Any, path: str) -> None:
    page.goto(page.base + path, wait_until="load")
    page.wait_for_load_state("networkidle")


def xss_ran(page: Any) -> list[Any]:
    ran = []
    for frame in page.frames:
        try:
            ran += frame.evaluate("window.__xssRan || []")
        except Exception:  # noqa: BLE001 - a sandboxed frame without scripts cannot be evaluated: nothing ran there
            continue
    return ran


def shown_runs(page: Any) -> list[str]:
    return page.locator("#runs-table tbody tr[data-run]").evaluate_all("rows => rows.map(r => r.dataset.run)")


def shown_rows(page: Any) -> list[int]:
    return [int(r) for r in page.locator("#results-table tbody tr[data-row]").evaluate_all(
        "rows => rows.map(r => r.dataset.row)")]


def test_every_page_loads_clean(ui: Any, ui_server: Any) -> None:
    s = ui_server.seeded
    pages = ["/", "/runs", f"/experiments/{s.experiments['sweep']}", f"/runs/{s.sweep_runs[0]}",
             f"/runs/{s.eval_runs[1]}", f"/runs/{s.xss_run}", f"/runs/{s.running_run}", f"/runs/{s.nights[0]}",
             f"/compare?run={s.eval_runs[0]}&run={s.eval_runs[1]}",
             "/compare?" + "&".join(f"run={r}" for r in s.sweep_runs[:20]), "/suites", f"/suites/{s.suite}"]
    for path in pages:
        go(ui, path)
        assert ui.errors == [], path
        assert ui.locator("h1").count() == 1, path
    go(ui, f"/runs/{s.eval_runs[1]}")
    ui.wait_for_selector("#results-table")
    report = ui.frame_locator("#report-frame")
    assert "candidate-eval" in report.locator("body").inner_text(timeout=TIMEOUT)
    go(ui, f"/runs/{s.sweep_runs[0]}")
    ui.wait_for_selector("#charts canvas")  # the loss history, drawn by uPlot
    assert ui.errors == [] and xss_ran(ui) == []


def test_filter_sort_and_paging_match_the_store(ui: Any, ui_server: Any) -> None:
    store, sweep = ui_server.store, ui_server.seeded.experiments["sweep"]
    go(ui, f"/experiments/{sweep}?size=25")
    ui.fill("#filter", "params.lr = '0.1' OR tags.team = 'rag'")
    ui.press("#filter", "Enter")
    ui.wait_for_url("**filter=*")
    expected = store.search_runs([sweep], "params.lr = '0.1' OR tags.team = 'rag'", max_results=25)[0]
    assert shown_runs(ui) == [r.info.run_id for r in expected]
    assert store.count_runs([sweep], "params.lr = '0.1' OR tags.team = 'rag'") > 25
    assert "of 40" in ui.inner_text("#run-count")

    ui.click("th a[data-sort='metrics.`accuracy`']")
    ui.wait_for_url("**order=metrics*")
    ui.wait_for_selector("th.sorted")
    ordered = store.search_runs([sweep], "params.lr = '0.1' OR tags.team = 'rag'", max_results=1000,
                                order_by="metrics.accuracy DESC")[0]
    assert shown_runs(ui) == [r.info.run_id for r in ordered[:25]]
    ui.click("th a[data-sort='metrics.`accuracy`']")
    ui.wait_for_url("**dir=asc*")
    assert shown_runs(ui) == [r.info.run_id for r in reversed(ordered)][:25]

    ui.click("#next-page")
    ui.wait_for_selector("#prev-page")
    assert shown_runs(ui) == [r.info.run_id for r in reversed(ordered)][25:50]
    assert ui.inner_text("#run-count").startswith("Runs 26–40 of 40")

    ui.fill("#filter", "metrics.accuracy >> 3")
    ui.press("#filter", "Enter")
    ui.wait_for_selector("#filter-error")
    assert "^" in ui.inner_text("#filter-error pre") and ui.errors == []


def test_column_chooser_is_remembered_in_the_url(ui: Any, ui_server: Any) -> None:
    sweep = ui_server.seeded.experiments["sweep"]
    go(ui, f"/experiments/{sweep}")
    ui.click("#chooser summary")
    ui.fill("#chooser input[type=search]", "tea")
    # Wait for the search's answer itself: the list the chooser loaded when it opened also holds
    # tags.team, and a box checked there would be replaced by the search's answer.
    ui.wait_for_function("""() => {
        const boxes = [...document.querySelectorAll('#column-list fieldset input')].map(b => b.value);
        return boxes.length === 1 && boxes[0] === 'tags.team';
    }""", timeout=30_000)  # the key search answered late once in CI, on a loaded machine
    ui.wait_for_load_state("networkidle")
    # The chosen columns stay listed; the search narrowed the others to the one key containing "tea".
    offered = ui.locator("#column-list fieldset input").evaluate_all("boxes => boxes.map(b => b.value)")
    assert offered == ["tags.team"]
    ui.locator("#column-list input[value='tags.team']").check()
    ui.click("#chooser button[type=submit]")
    ui.wait_for_url("**col=tags.team*")
    assert ui.locator("#runs-table thead", has_text="tag · team").count() == 1
    url = ui.url
    go(ui, url[len(ui.base):])
    teams = ui.locator("#runs-table tbody tr td:last-child").all_inner_texts()
    runs = {r.info.run_id: r for r in ui_server.store.search_runs([sweep], max_results=100)[0]}
    assert teams == [runs[i].data.tags["team"] for i in shown_runs(ui)] and set(teams) == {"rag", "search"}


def test_boxes_changed_while_a_key_search_is_on_its_way_keep_the_users_choice(ui: Any, ui_server: Any) -> None:
    sweep = ui_server.seeded.experiments["sweep"]
    go(ui, f"/experiments/{sweep}")
    ui.click("#chooser summary")
    ui.wait_for_function("() => document.querySelector(\"#column-list fieldset input[value='tags.team']\")")
    ui.wait_for_load_state("networkidle")
    chosen = ui.locator("#column-list > label input:checked").evaluate_all("boxes => boxes.map(b => b.value)")
    assert "params.lr" in chosen and "tags.team" not in chosen
    held: list[Any] = []
    ui.route("**/columns?*", lambda route: held.append(route))  # the search's answer waits until the boxes are changed
    ui.fill("#chooser input[type=search]", "tea")
    for _ in range(500):  # the route's handler runs while Playwright waits
        if held:
            break
        ui.wait_for_timeout(20)
    assert len(held) == 1
    ui.locator("#column-list input[value='tags.team']").check()
    ui.locator("#column-list input[value='params.lr']").uncheck()
    held[0].continue_()
    ui.wait_for_function("() => !document.querySelector('.htmx-request')")
    ui.unroute("**/columns?*")
    # The request carried params.lr checked and tags.team unchecked; the list shows what the user chose since.
    listed = ui.locator("#column-list input").evaluate_all("boxes => boxes.map(b => [b.value, b.checked])")
    assert sorted(listed) == sorted([[value, value != "params.lr"] for value in chosen] + [["tags.team", True]])
    ui.click("#chooser button[type=submit]")
    ui.wait_for_url("**col=tags.team*")
    # The newly chosen column comes last, as it would have without the search in flight.
    assert parse_qs(urlsplit(ui.url).query)["col"] == [c for c in chosen if c != "params.lr"] + ["tags.team"]
    assert ui.errors == []


def test_compare_with_only_differences(ui: Any, ui_server: Any) -> None:
    sweep = ui_server.seeded.experiments["sweep"]
    go(ui, f"/experiments/{sweep}?size=25")
    boxes = ui.locator("#runs-table tbody input[name=run]")
    for i in (0, 1, 3):
        boxes.nth(i).check()
    ui.click("#compare-button")
    ui.wait_for_url("**/compare?*")
    chosen = [ui_server.store.get_run(r) for r in ui.url.split("?")[1].replace("run=", "").split("&")]
    assert len(chosen) == 3
    all_params = ui.locator("#compare-params tbody tr[data-key]").count()
    ui.click("#toggle-diff")
    ui.wait_for_url("**diff=1*")
    differing = ui.locator("#compare-params tbody tr[data-key]").evaluate_all("rows => rows.map(r => r.dataset.key)")
    expected = sorted(k for k in chosen[0].data.params if len({r.data.params.get(k) for r in chosen}) > 1)
    assert differing == expected and all_params == 2
    ui.select_option("#compare-metric", "loss")
    ui.wait_for_selector("#compare-chart canvas")
    assert ui.errors == []


def test_paired_comparison_of_two_evaluations(ui: Any, ui_server: Any) -> None:
    baseline, candidate = ui_server.seeded.eval_runs
    go(ui, f"/compare?run={baseline}&run={candidate}")
    verdicts = ui.locator("#paired-metrics tbody tr").all_inner_texts()
    assert any("token_f1/v1/mean" in v for v in verdicts)
    assert ui.locator("#rows-regressed .change").count() > 0 and ui.locator("#rows-improved .change").count() > 0
    assert ui.locator("#rows-regressed .diff span.ddel, #rows-regressed .diff span.dins").count() > 0


def test_results_filters_search_and_row_detail(ui: Any, ui_server: Any) -> None:
    run_id = ui_server.seeded.eval_runs[0]
    table = TrackingClient.for_store(ui_server.store).load_table(run_id, "eval_results_table.parquet")
    go(ui, f"/runs/{run_id}")
    ui.wait_for_selector("#results-table")
    assert shown_rows(ui) == [int(r) for r in table["row"]][:50]

    ui.check("#results .results-filter[name=failed]")
    ui.wait_for_selector("#results-count:text-matches('^3 of')")
    assert shown_rows(ui) == sorted(int(r) for r in table.loc[table["status"] == "failed", "row"])
    # The uncheck's answer does not replace the filters: a box checked while it is on its way stays checked.
    ui.uncheck("#results .results-filter[name=failed]")
    scores = np.vstack([table[f"{n}/score"].astype(float).to_numpy() for n in ("exact_match", "token_f1")])
    poor = sorted(int(r) for r, bad in zip(table["row"], (scores < 0.5).any(axis=0), strict=True) if bad)
    ui.check("#results .results-filter[name=poor]")
    # Its answer, not networkidle: once the page has loaded, Playwright reports networkidle at once.
    ui.wait_for_selector(f"#results-count:text-matches('^{len(poor)} of')")
    assert shown_rows(ui) == poor
    assert ui.locator("#results .results-filter:checked").evaluate_all("boxes => boxes.map(b => b.name)") == ["poor"]

    ui.uncheck("#results .results-filter[name=poor]")
    ui.fill("#results-q", "lamp")  # typed while the uncheck's answer may be on its way
    # Rows without an output (failed calls) are found by their input or target.
    found = np.logical_or.reduce([table[c].str.lower().str.contains("lamp", na=False).to_numpy()
                                  for c in ("inputs", "outputs", "targets")])
    ui.wait_for_selector(f"#results-count:text-matches('^{int(found.sum())} of')")
    assert shown_rows(ui) == [int(r) for r in table.loc[found, "row"]] and ui.input_value("#results-q") == "lamp"
    assert table.loc[table["row"].isin(shown_rows(ui)), "outputs"].isna().any()

    first = shown_rows(ui)[0]
    ui.click(f"#results-table tr[data-row='{first}']")
    ui.wait_for_selector("#row-detail #row-input")
    record = table.loc[table["row"] == first].iloc[0]
    assert ui.inner_text("#row-detail #row-input") == record["inputs"]
    assert ui.locator("#row-scores tr").count() >= 2
    assert ui.errors == []


def test_xss_payloads_run_nothing(ui: Any, ui_server: Any) -> None:
    s = ui_server.seeded
    go(ui, "/")
    assert ui.locator("a.exp-name", has_text="<img src=x").count() == 1  # shown as text
    go(ui, f"/experiments/{s.experiments[XSS[0]]}")
    assert ui.locator("#runs-table td.name", has_text="<script>").count() == 1
    go(ui, f"/runs/{s.xss_run}")
    ui.wait_for_selector("#artifact-tree li.file")
    for name in ("notes.txt", "data.json", "table.parquet", "page.html"):
        ui.click(f"#artifact-tree a[data-path='{name}']")
        ui.wait_for_selector(f"#preview .preview-title:has-text('{name}')")
        ui.wait_for_load_state("networkidle")
    ui.click("#artifact-tree a[data-path^='evil']")
    ui.wait_for_selector("#preview pre.text-preview")
    go(ui, f"/runs/{s.eval_runs[0]}")
    ui.click("#results-table tr[data-row='4']")
    ui.wait_for_selector("#row-detail #row-output")
    assert "<script>" in ui.inner_text("#row-detail #row-output")
    go(ui, f"/compare?run={s.xss_run}&run={s.sweep_runs[0]}")
    assert xss_ran(ui) == [] and ui.errors == []


def test_live_progress_of_a_running_evaluation(ui: Any, ui_server: Any) -> None:
    go(ui, f"/runs/{ui_server.seeded.running_run}")
    ui.wait_for_selector("#progress-box")
    assert ui.inner_text("#rows-done") == "4" and ui.inner_text("#rows-failed") == "1"
    assert "of 10 rows done" in ui.inner_text("#progress-box") and ui.inner_text("#spend") == "$0.0040"


def test_suite_page_shows_nights_gates_and_snapshot_changes(ui: Any, ui_server: Any) -> None:
    go(ui, "/suites")
    ui.click(f"#suites a:text-is('{ui_server.seeded.suite}')")
    ui.wait_for_url(f"**/suites/{ui_server.seeded.suite}")
    assert ui.locator("article.night").count() == 3
    assert ui.locator("article.night").first.locator(".gate.failed").count() >= 2  # the night and one pair
    assert ui.locator("#history svg g.mark").count() == 1  # model-b's snapshot change
    assert ui.errors == []


# ---- the model registry ------------------------------------------------------------------------


def test_registry_pages_load_clean_and_their_links_work(ui: Any, ui_server: Any) -> None:
    s = ui_server.seeded
    go(ui, "/")
    ui.click("header nav a:text('Models')")
    ui.wait_for_url("**/models")
    ui.fill("#filter", f"name = '{s.model}'")  # other tests' models share the server
    ui.press("#filter", "Enter")
    ui.wait_for_url("**filter=*")
    assert ui.locator("#models tbody tr[data-model]").count() == 1
    ui.click(f"#models a.model-name:text-is('{s.model}')")
    ui.wait_for_url(f"**/models/{s.model}")
    assert ui.locator("#versions tbody tr[data-version]").evaluate_all("rows => rows.map(r => r.dataset.version)") == [
        "3", "2", "1"]
    assert ui.locator("#history-table tbody tr").count() == len(ui_server.store.get_model_version_history(s.model))
    ui.click("#versions tr[data-version='2'] td:first-child a")
    ui.wait_for_url(f"**/models/{s.model}/versions/2")
    assert ui.inner_text("#version-stage") == "Production"
    ui.click("#version-info a.source-run")
    ui.wait_for_url(f"**/runs/{s.model_runs[1]}")
    ui.click("#registered-as a")
    ui.wait_for_url(f"**/models/{s.model}/versions/2")
    ui.click("#history-table a.evidence >> nth=0")
    ui.wait_for_url(f"**/runs/{s.evidence_runs[0]}")
    go(ui, f"/models?filter=name+%3D+%27{s.model}%27+OR")
    assert "expected AND" in ui.inner_text("#filter-error")
    assert ui.errors == [] and xss_ran(ui) == []


def test_registry_xss_payloads_show_as_text(ui: Any, ui_server: Any) -> None:
    s = ui_server.seeded
    go(ui, "/models?filter=name+LIKE+%27%3Cimg%25%27")
    ui.click("#models a.model-name:has-text('<img src=x')")
    ui.wait_for_selector("#model-info")
    assert ui.inner_text("h1") == s.xss_model
    assert ui.inner_text("#model-description") == XSS[1] and XSS[3] in ui.inner_text("#model-tags")
    ui.click("#versions tr[data-version='1'] td:first-child a")
    ui.wait_for_selector("#version-info")
    assert XSS[2] in ui.inner_text("#version-tags")
    go(ui, f"/runs/{s.model_runs[0]}")
    assert s.xss_model in ui.inner_text("#registered-as")
    assert xss_ran(ui) == [] and ui.errors == []


def test_stage_transition_through_the_form_lands_in_the_store_and_the_history(ui: Any, ui_server: Any) -> None:
    store, registry = ui_server.store, ui_server.seeded.experiments["registry"]
    client = TrackingClient.for_store(store)
    name, hashes = own_model(client, registry, "browser-promote", evidence_required=["Production"])
    go(ui, f"/models/{name}")
    form = ui.locator("#versions tr[data-version='2'] form.stage-form")
    ui.click("#versions tr[data-version='2'] details summary")
    form.locator("select[name=stage]").select_option("Production")
    form.locator("button[type=submit]").click()
    ui.wait_for_selector("#versions tr[data-version='2'] [role=alert]")
    assert "requires evidence" in ui.inner_text("#versions tr[data-version='2'] [role=alert]")
    assert store.get_model_version(name, 2).current_stage == "None"
    # The refusal is answered 409 (the form's page, with the error beside it); Chromium logs that status.
    assert len(ui.errors) == 1 and "status of 409" in ui.errors[0] and "/versions/2/stage" in ui.errors[0]
    ui.errors.clear()

    evidence = evidence_run(client, registry, hashes[1])
    form = ui.locator("#versions tr[data-version='2'] form.stage-form")
    form.locator("select[name=stage]").select_option("Production")
    form.locator("input[name=evidence_run_id]").fill(evidence)
    form.locator("button[type=submit]").click()
    ui.wait_for_selector(".notice")
    assert ui.inner_text(".notice") == "Version 2 is now in Production."
    assert store.get_model_version(name, 2).current_stage == "Production"
    newest = ui.locator("#history-table tbody tr").first
    assert newest.get_attribute("data-kind") == "stage" and "Production" in newest.inner_text()
    newest.locator("a.evidence").click()
    ui.wait_for_url(f"**/runs/{evidence}")
    assert ui.errors == []


def submit(page: Any, button: str) -> None:
    """Click a form's ``button`` and wait for the page it answers with to load (styles applied)."""
    with page.expect_navigation():
        page.click(button)


def test_description_and_tags_edited_through_the_forms(ui: Any, ui_server: Any) -> None:
    store = ui_server.store
    name, _ = own_model(TrackingClient.for_store(store), ui_server.seeded.experiments["registry"], "browser-edit")
    go(ui, f"/models/{name}")
    ui.click("#description-edit summary")
    ui.fill("#description-form textarea", f"Ships on Fridays\n{XSS[1]}")
    submit(ui, "#description-form button[type=submit]")
    assert ui.inner_text(".notice") == "Saved the description."
    assert ui.inner_text("#model-description") == f"Ships on Fridays\n{XSS[1]}"  # its lines kept
    assert store.get_registered_model(name).description == f"Ships on Fridays\n{XSS[1]}"
    ui.fill("#tag-form input[name=key]", "owner")
    ui.fill("#tag-form input[name=value]", XSS[0])
    submit(ui, "#tag-form button[type=submit]")
    assert ui.inner_text(".notice") == "Set the tag owner."
    assert ui.inner_text("#model-tags .tag") == f"owner = {XSS[0]}"
    assert store.get_registered_model(name).tags == {"owner": XSS[0]}
    submit(ui, "#model-tags button[aria-label='delete the tag owner']")
    assert ui.inner_text(".notice") == "Deleted the tag owner."
    assert ui.inner_text("#model-tags") == "—" and store.get_registered_model(name).tags == {}

    go(ui, f"/models/{name}/versions/2")
    ui.fill("#tag-form input[name=key]", "judge")
    ui.fill("#tag-form input[name=value]", "gpt-4o")
    submit(ui, "#tag-form button[type=submit]")
    assert ui.inner_text("#version-tags .tag") == "judge = gpt-4o"
    assert store.get_model_version(name, 2).tags == {"judge": "gpt-4o"}
    assert xss_ran(ui) == [] and ui.errors == []


def test_a_version_is_deleted_through_its_confirmation(ui: Any, ui_server: Any) -> None:
    store = ui_server.store
    name, _ = own_model(TrackingClient.for_store(store), ui_server.seeded.experiments["registry"], "browser-delete")
    store.set_registered_model_alias(name, "canary", 2)
    go(ui, f"/models/{name}/versions/2")
    confirm = ui.locator("#delete-version-form input[name=confirm]")
    confirm.fill("1")  # the wrong number: the browser does not send the form
    ui.click("#delete-version-form button[type=submit]")
    assert confirm.evaluate("e => e.validity.patternMismatch") and ui.url.endswith(f"/models/{name}/versions/2")
    assert store.get_model_version(name, 2).aliases == ["canary"]
    confirm.fill("2")
    submit(ui, "#delete-version-form button[type=submit]")
    assert urlsplit(ui.url).path == f"/models/{name}"
    assert ui.inner_text(".notice") == "Deleted version 2 (@canary went with it)."
    assert ui.locator("#versions tbody tr[data-version]").evaluate_all("rows => rows.map(r => r.dataset.version)") == [
        "1"]
    assert ui.locator("#history-table tbody tr").first.get_attribute("data-kind") == "deleted"
    assert [v.version for v in store.search_model_versions(f"name = '{name}'")] == [1]
    assert ui.errors == []


@pytest.fixture(scope="module")
def reader_url(ui_server: Any) -> Any:
    """The UI over the seeded store as a reader sees it, on an in-process uvicorn (127.0.0.1)."""
    app = ui_app(ui_server.store, ui_server.seeded.artifact_root, Principal("viewer", "reader"))
    with serve_in_thread(app, lifespan="off") as url:
        yield url


def test_a_reader_sees_no_forms(browser_context: Any, reader_url: str, ui_server: Any) -> None:
    page = browser_context.new_page()
    page.errors = watch(page, reader_url)
    page.base = reader_url
    s = ui_server.seeded
    for path in ("/models", f"/models/{s.model}", f"/models/{s.model}/versions/3", "/"):
        go(page, path)
        assert page.locator("main form[method=post]").count() == 0, path
        assert "viewer · reader" in page.inner_text("header")
    assert page.errors == []
