import json
from dataclasses import replace

import pytest

from harkit.evaluation.evaluate import evaluate_run
from harkit.evaluation.report import write_report
from harkit.training.crossval import cross_validate
from harkit.training.engine import train
from harkit.training.grid import run_grid


def test_evaluation_writes_tables_and_non_empty_plots(tiny_config, tmp_path):
    run = train(replace(tiny_config, epochs=2), tmp_path / "run", progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("parameters", "macs_per_window", "latency", "seconds_per_epoch", "final_train_loss", "per_class"):
        assert key in metrics
    assert metrics["latency"]["batch_8"]["median_ms"] > 0
    for name in ("per_class.png", "curves.png", "confusion.png"):
        path = run / "plots" / name
        assert path.stat().st_size > 10_000, name
    header = (run / "confusion.csv").read_text().splitlines()[0]
    assert header.split(",")[1:] == [row["class"] for row in metrics["per_class"]]
    assert len((run / "confusion.csv").read_text().splitlines()) == 1 + 6
    again = evaluate_run(run, plots=False, latency_repeats=2)
    assert again["accuracy"] == metrics["accuracy"]


def test_report_lists_every_run_and_survives_failures(tiny_config, tmp_path):
    base = replace(tiny_config, epochs=1)
    root = tmp_path / "bench"
    markdown, page = run_grid(root, ["hapt"], ["sann", "cnn"], [0, 1], base, progress=False)
    text = markdown.read_text()
    assert "| hapt | sann | 2/2 |" in text and "| hapt | cnn | 2/2 |" in text
    assert "Does spatial attention help?" in text
    html = page.read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<table>" in html

    # a failing cell (a model that cannot take the window) and a run that never finished
    run_grid(root, ["hapt"], ["deepconvlstm"], [0], replace(base, window=8, model_options={}), progress=False)
    (root / "runs" / "hapt" / "lstm" / "seed-0").mkdir(parents=True)
    text = write_report(root)[0].read_text()
    assert "deepconvlstm | 0 | failed" in text and "needs windows of at least 17" in text
    assert "| hapt | lstm | 0 | not finished |" in text

    # re-running skips finished runs: nothing is retrained
    before = (root / "runs" / "hapt" / "sann" / "seed-0" / "metrics.json").stat().st_mtime_ns
    run_grid(root, ["hapt"], ["sann"], [0], base, progress=False)
    assert (root / "runs" / "hapt" / "sann" / "seed-0" / "metrics.json").stat().st_mtime_ns == before


def test_leave_one_subject_out_reports_each_fold(tiny_config, tmp_path):
    summary = cross_validate(replace(tiny_config, epochs=1, val_fraction=0.0), tmp_path / "cv", "loso", progress=False)
    assert [row["test_subjects"] for row in summary["folds"]] == [[1], [2], [3]]
    accuracies = [row["accuracy"] for row in summary["folds"]]
    assert summary["mean"]["accuracy"] == pytest.approx(sum(accuracies) / 3)
    assert (tmp_path / "cv" / "crossval.json").is_file()


def test_grid_runs_in_parallel_worker_processes(tiny_config, tmp_path):
    base = replace(tiny_config, epochs=1)
    markdown, _ = run_grid(tmp_path / "bench", ["hapt"], ["sann", "cnn"], [0], base, workers=2, progress=False)
    text = markdown.read_text()
    assert "| hapt | sann | 1/1 |" in text and "| hapt | cnn | 1/1 |" in text
