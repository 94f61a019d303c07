import json
import re
from dataclasses import replace

import pytest

from harkit import HarkitError
from harkit.evaluation.evaluate import evaluate_run
from harkit.evaluation.report import write_report
from harkit.training.crossval import cross_validate, parse_folds
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
    lines = []
    config = replace(tiny_config, epochs=1, val_fraction=0.0)
    summary = cross_validate(config, tmp_path / "cv", "loso", progress=False, say=lines.append)
    assert [row["test_subjects"] for row in summary["folds"]] == [[1], [2], [3]]
    accuracies = [row["accuracy"] for row in summary["folds"]]
    assert summary["mean"]["accuracy"] == pytest.approx(sum(accuracies) / 3)
    assert (tmp_path / "cv" / "crossval.json").is_file()
    assert summary["complete"] and summary["covered_folds"] == [0, 1, 2]
    assert lines[0] == "[1 of 3] fold 0 of 3, test subject 1: training"
    assert re.search(r"^\[3 of 3\] fold 2 of 3, test subject 3: training, about \d+ s left$", lines[4]), lines


def test_only_some_folds(tiny_config, tmp_path):
    config = replace(tiny_config, epochs=1, val_fraction=0.0)
    summary = cross_validate(config, tmp_path / "cv", "loso", progress=False, only=parse_folds("0,2"))
    assert [row["fold"] for row in summary["folds"]] == [0, 2] and not summary["complete"]
    assert summary["covered_folds"] == [0, 2] and summary["total_folds"] == 3
    assert sorted(p.name for p in (tmp_path / "cv").iterdir()) == ["crossval-folds-0-2.json", "fold-00", "fold-02"]
    assert parse_folds("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(HarkitError, match=r"this loso split has folds 0\.\.2"):
        cross_validate(config, tmp_path / "cv", "loso", progress=False, only=[3])
    with pytest.raises(HarkitError, match="expected fold numbers"):
        parse_folds("one")


def test_grid_runs_in_parallel_worker_processes(tiny_config, tmp_path, monkeypatch):
    base = replace(tiny_config, epochs=1)
    lines = []
    markdown, _ = run_grid(
        tmp_path / "bench", ["hapt"], ["sann", "cnn"], [0], base, workers=2, progress=False, say=lines.append
    )
    text = markdown.read_text()
    assert "| hapt | sann | 1/1 |" in text and "| hapt | cnn | 1/1 |" in text
    # one distinct line per run, "x of N", naming dataset, model and seed
    finished = [line for line in lines if ": finished" in line]
    assert len(finished) == 2 and finished[0].startswith("[1 of 2] ") and finished[1].startswith("[2 of 2] ")
    assert {"model sann (1 of 2)" in finished[0], "model sann (1 of 2)" in finished[1]} == {True, False}
    assert all("dataset hapt (1 of 1)" in line and "seed 0 (1 of 1)" in line for line in finished)
    assert "about" in finished[0] and "left" in finished[0]  # an ETA while runs remain

    # run again: every run is finished, so no worker process is started
    from harkit.training import grid

    monkeypatch.setattr(grid, "ProcessPoolExecutor", None)
    lines.clear()
    run_grid(tmp_path / "bench", ["hapt"], ["sann", "cnn"], [0], base, workers=2, progress=False, say=lines.append)
    assert len(lines) == 2 and all("already finished, skipped" in line for line in lines)


def test_grid_says_where_it_is_with_an_eta(tiny_config, tmp_path):
    lines = []
    run_grid(tmp_path / "bench", ["hapt"], ["cnn"], [0, 1], replace(tiny_config, epochs=1), False, say=lines.append)
    assert lines[0] == "[1 of 2] dataset hapt (1 of 1), model cnn (1 of 1), seed 0 (1 of 2): training"
    assert lines[1].startswith("[1 of 2] dataset hapt (1 of 1), model cnn (1 of 1), seed 0 (1 of 2): finished (acc")
    assert re.search(r"\[2 of 2\] .*seed 1 \(2 of 2\): training, about \d+ s left$", lines[2]), lines[2]
    lines.clear()
    run_grid(tmp_path / "bench", ["hapt"], ["cnn"], [0, 1], replace(tiny_config, epochs=1), False, say=lines.append)
    assert len(lines) == 2 and all("already finished, skipped" in line for line in lines)


@pytest.mark.parametrize("epochs", [1, 3, 25])
def test_learning_curves_have_whole_epoch_ticks(monkeypatch, tmp_path, epochs):
    import matplotlib.pyplot as plt

    from harkit.evaluation import plots

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    history = [
        {"epoch": e, "train_loss": 1 / e, "train_accuracy": e / 30, "val_loss": 1 / e} for e in range(1, epochs + 1)
    ]
    plots.plot_curves(history, "t", tmp_path / "curves.png")
    for ax in figures[0].axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    plt.close(figures[0])


def test_sann_against_cnn_is_a_paired_test_over_seeds(tmp_path):
    from harkit.evaluation.report import RunResult, attention_effect

    sann, cnn = [0.90, 0.95, 0.80], [0.890, 0.939, 0.791]  # one seed's runs share validation subjects
    results = [
        RunResult("d", model, seed, tmp_path, {"macro_f1": value})
        for model, values in (("sann", sann), ("cnn", cnn))
        for seed, value in enumerate(values)
    ]
    effect = attention_effect(results)[0]
    assert effect["paired_seeds"] == 3 and effect["difference"] == pytest.approx(0.01)
    assert effect["p_value"] < 0.01  # Welch's unpaired test would see only seed-to-seed noise here (p = 0.88)


def title_gaps(module, monkeypatch, tmp_path, models: int) -> list[float]:
    """Pixels between the figure title of a datasets-per-model chart and each panel title below it."""
    figures = []
    monkeypatch.setattr(module.plt, "close", figures.append)
    rows = [
        {"dataset": d, "model": f"model-{m}", "accuracy": (0.9, 0.01, [0.9]), "macro_f1": (0.88, 0.01, [0.88])}
        for d in ("hapt", "uci-har")
        for m in range(models)
    ]
    module._bar_chart(rows, "model", "dataset", ["macro_f1"], "datasets compared per model", tmp_path / "c.png")
    figure = figures[0]
    renderer = figure.canvas.get_renderer()
    gaps = []
    if figure._suptitle is not None:
        title = figure._suptitle.get_window_extent(renderer)
        gaps = [title.y0 - ax.title.get_window_extent(renderer).y1 for ax in figure.axes if ax.get_title()]
    module.plt.close(figure)
    return gaps


@pytest.mark.parametrize("models", [1, 2, 7])
def test_chart_titles_keep_apart(monkeypatch, tmp_path, models):
    from harkit.evaluation import report

    gaps = title_gaps(report, monkeypatch, tmp_path, models)
    assert all(gap >= 15 for gap in gaps), gaps  # before: 7.8 px, the titles read as one line
    assert (gaps == []) == (models == 1)  # one panel carries one title
