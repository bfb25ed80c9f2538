"""The fluent API as users call it: ``import evalkit as ek``."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import evalkit as ek


def test_default_store_is_a_sqlite_file_in_the_working_directory(tmp_path):
    with ek.start_run() as run:
        ek.log_metric("m", 1.0)
    assert ek.get_tracking_uri() == f"sqlite:///{tmp_path / 'evalkit.db'}"
    assert (tmp_path / "evalkit.db").is_file()
    assert run.info.artifact_uri.startswith(str(tmp_path / "evalkit-artifacts"))
    assert ek.get_experiment(run.info.experiment_id).name == "Default"


def test_tracking_uri_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_TRACKING_URI", "sub/store.db")
    assert ek.get_tracking_uri() == f"sqlite:///{tmp_path / 'sub' / 'store.db'}"
    ek.set_tracking_uri("other.db")
    assert ek.get_tracking_uri().endswith("/other.db")


def test_context_manager_finishes_fails_or_kills_the_run():
    with ek.start_run() as ok:
        pass
    with pytest.raises(ValueError):
        with ek.start_run() as failed:
            raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt):
        with ek.start_run() as killed:
            raise KeyboardInterrupt
    assert ek.get_run(ok.info.run_id).info.status is ek.RunStatus.FINISHED
    assert ek.get_run(failed.info.run_id).info.status is ek.RunStatus.FAILED
    assert ek.get_run(killed.info.run_id).info.status is ek.RunStatus.KILLED
    assert ek.active_run() is None


def test_nested_runs_and_the_active_run():
    with ek.start_run(run_name="parent") as parent:
        with pytest.raises(ek.InvalidState, match="already active.*nested=True"):
            ek.start_run()
        with ek.start_run(run_name="child", nested=True) as child:
            assert ek.active_run().info.run_id == child.info.run_id
            ek.log_metric("depth", 2)
        assert ek.active_run().info.run_id == parent.info.run_id
    child_run = ek.get_run(child.info.run_id)
    assert child_run.info.parent_run_id == parent.info.run_id
    assert child_run.data.metrics == {"depth": 2.0}


def test_logging_without_a_run_starts_one_and_end_run_finishes_it():
    ek.log_param("p", 1)
    run = ek.active_run()
    assert run is not None
    ek.end_run()
    assert ek.active_run() is None
    assert ek.get_run(run.info.run_id).info.status is ek.RunStatus.FINISHED


def test_reopening_a_run_by_id_allows_more_writes():
    with ek.start_run() as run:
        ek.log_metric("m", 1.0, step=0)
    with ek.start_run(run_id=run.info.run_id):
        ek.log_metric("m", 2.0, step=1)
    assert [m.value for m in ek.get_metric_history(run.info.run_id, "m")] == [1.0, 2.0]


def test_set_experiment_creates_and_selects(tmp_path):
    experiment = ek.set_experiment("rag-eval")
    with ek.start_run() as run:
        pass
    assert run.info.experiment_id == experiment.experiment_id
    assert ek.set_experiment("rag-eval").experiment_id == experiment.experiment_id
    with pytest.raises(ek.InvalidArgument, match="exactly one"):
        ek.set_experiment()


def test_experiment_name_from_environment(monkeypatch):
    monkeypatch.setenv("EVALKIT_EXPERIMENT_NAME", "from-env")
    with ek.start_run() as run:
        pass
    assert ek.get_experiment(run.info.experiment_id).name == "from-env"


def test_buffered_values_are_visible_to_reads_before_the_run_ends():
    with ek.start_run() as run:
        for step in range(50):
            ek.log_metric("loss", 1 / (step + 1), step=step)
        ek.log_params({"a": 1, "b": "x"})
        ek.set_tags({"t": "v"})
        data = ek.get_run(run.info.run_id).data
        assert data.metrics["loss"] == pytest.approx(1 / 50)
        assert data.params == {"a": "1", "b": "x"} and data.tags == {"t": "v"}
        assert len(ek.get_metric_history(run.info.run_id, "loss")) == 50


def test_buffer_is_flushed_in_the_background_within_about_a_second():
    import sqlite3
    import time

    with ek.start_run() as run:
        ek.log_metric("m", 1.0)

        def stored() -> int:  # read the table directly: a read through the store would flush itself
            with sqlite3.connect(ek.get_tracking_uri().removeprefix("sqlite:///")) as conn:
                return conn.execute("SELECT count(*) FROM metric_history").fetchone()[0]

        deadline = time.monotonic() + 5
        count = stored()
        while count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            count = stored()
        assert count == 1
    assert run.info.run_id


def test_artifacts_text_dict_table_figure_and_files(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = tmp_path / "evaluation_report.html"
    report.write_text("<html>report</html>")
    folder = tmp_path / "plots"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "x.txt").write_text("x")
    table = pd.DataFrame({"question": ["q1", "q2"], "score": [0.5, 1.0]})
    with ek.start_run() as run:
        ek.log_artifact(report)
        ek.log_artifact(report, artifact_path="reports")
        ek.log_artifacts(folder, artifact_path="plots")
        ek.log_text("hello", "notes/hello.txt")
        ek.log_dict({"a": 1}, "config.json")
        ek.log_dict({"a": 1}, "config.yaml")
        ek.log_table(table, "eval_results_table.json")
        ek.log_table(table, "eval_results_table.parquet")
        fig, ax = plt.subplots()
        ax.plot([3, 2, 1])
        ek.log_figure(fig, "training_curve.png")
        plt.close(fig)

    client = ek.TrackingClient()
    run_id = run.info.run_id
    top = {a.path: a for a in client.list_artifacts(run_id)}
    assert set(top) == {"evaluation_report.html", "reports", "plots", "notes", "config.json", "config.yaml",
                        "eval_results_table.json", "eval_results_table.parquet", "training_curve.png"}
    assert top["reports"].is_dir and top["config.json"].file_size > 0
    assert [a.path for a in client.list_artifacts(run_id, "plots/inner")] == ["plots/inner/x.txt"]
    assert client.load_text(run_id, "notes/hello.txt") == "hello"
    assert json.loads(client.load_text(run_id, "config.json")) == {"a": 1}
    assert "a: 1" in client.load_text(run_id, "config.yaml")
    pd.testing.assert_frame_equal(client.load_table(run_id, "eval_results_table.json"), table)
    pd.testing.assert_frame_equal(client.load_table(run_id, "eval_results_table.parquet"), table)
    png = client.download_artifacts(run_id, "training_curve.png", tmp_path / "out")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bad", ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "~/x.txt", "..\\x.txt",
                                 "C:/x.txt"])
def test_artifact_paths_cannot_escape_the_run_folder(tmp_path, bad):
    with ek.start_run():
        with pytest.raises(ek.InvalidArgument, match="escapes the run's artifact folder|is absolute: paths inside a run"):
            ek.log_text("x", bad)
    assert not (tmp_path / "outside.txt").exists()


def test_a_local_file_may_be_anywhere_but_the_path_inside_the_run_is_relative(tmp_path, monkeypatch):
    """README: ek.log_artifact("/abs/path/file.html") works; artifact_path="/abs" is refused, not
    quietly turned into "abs/" inside the run."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "report.html").write_text("<p>report</p>")
    (elsewhere / "notes.txt").write_text("notes")
    monkeypatch.setenv("HOME", str(elsewhere))
    client = ek.TrackingClient()
    with ek.start_run() as run:
        ek.log_artifact(str(elsewhere / "report.html"))  # an absolute local path
        ek.log_artifact("~/notes.txt", artifact_path="docs")  # ~ is the user's home, as in a shell
        ek.log_artifacts(elsewhere, artifact_path="all")
        for call in (lambda: ek.log_artifact(elsewhere / "report.html", artifact_path="/srv/reports"),
                     lambda: ek.log_artifacts(elsewhere, artifact_path="/srv/reports"),
                     lambda: ek.log_artifact(elsewhere / "report.html", artifact_path="../up")):
            with pytest.raises(ek.InvalidArgument, match="artifact path '(/srv/reports|../up)'"):
                call()
        with pytest.raises(ek.NotFound, match="is a directory, log it with log_artifacts"):
            ek.log_artifact(elsewhere)
    run_id = run.info.run_id
    assert client.load_text(run_id, "report.html") == "<p>report</p>"
    assert client.load_text(run_id, "docs/notes.txt") == "notes"
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["all", "docs", "report.html"]
    assert sorted(a.path for a in client.list_artifacts(run_id, "all")) == ["all/notes.txt", "all/report.html"]


def test_artifact_errors_are_clear(tmp_path):
    with ek.start_run():
        with pytest.raises(ek.NotFound, match="is not a file"):
            ek.log_artifact(tmp_path / "missing.html")
        with pytest.raises(ek.InvalidArgument, match="log_table writes"):
            ek.log_table(pd.DataFrame({"a": [1]}), "table.xlsx")
        with pytest.raises(ek.InvalidArgument, match="matplotlib figure"):
            ek.log_figure(object(), "fig.png")


def test_search_runs_returns_the_columns_mlflow_users_expect():
    ek.set_experiment("cols")
    with ek.start_run(run_name="r1"):
        ek.log_params({"lr": "2e-5"})
        ek.log_metrics({"eval_f1": 0.93})
        ek.set_tag("team", "nlp")
    frame = ek.search_runs(experiment_names=["cols"])
    assert list(frame.columns) == ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time",
                                   "run_name", "metrics.eval_f1", "params.lr", "tags.team"]
    assert frame.loc[0, "metrics.eval_f1"] == 0.93
    assert isinstance(frame.loc[0, "start_time"], pd.Timestamp)
    assert ek.search_runs(experiment_names="cols", filter_string="metrics.eval_f1 > 0.95").empty
    runs = ek.search_runs(experiment_names="cols", output_format="list")
    assert runs[0].info.run_name == "r1"
    with pytest.raises(ek.NotFound, match="no experiment named 'nope'"):
        ek.search_runs(experiment_names=["nope"])
