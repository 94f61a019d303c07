"""The comparison report sets every model against the MiniRocket baseline of its dataset."""

from dataclasses import replace

import pytest

from harkit.evaluation.report import versus_baseline
from harkit.training.grid import run_grid


def test_each_model_is_set_against_the_baseline_of_its_own_dataset(tmp_path):
    rows = [
        {"dataset": "a", "model": "minirocket", "macro_f1": (0.91, 0.01, [0.90, 0.92])},
        {"dataset": "a", "model": "tiny", "macro_f1": (0.96, 0.01, [0.95, 0.97])},
        {"dataset": "a", "model": "sann", "macro_f1": None},  # no finished run
        {"dataset": "b", "model": "tiny", "macro_f1": (0.80, 0.0, [0.80])},
    ]
    versus_baseline(rows)
    by_cell = {(r["dataset"], r["model"]): r["vs_baseline"] for r in rows}
    assert by_cell[("a", "tiny")] == pytest.approx(0.05)
    assert by_cell[("a", "minirocket")] is None  # the baseline itself
    assert by_cell[("a", "sann")] is None
    assert by_cell[("b", "tiny")] is None  # no baseline run on that dataset


def test_benchmark_report_has_the_baseline_column(tiny_config, tmp_path):
    base = replace(tiny_config, epochs=1, model_options={})
    markdown, _ = run_grid(tmp_path / "bench", ["hapt"], ["tiny", "minirocket"], [0], base, progress=False)
    lines = markdown.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| dataset"))
    assert header.rstrip(" |").endswith("macro F1 vs minirocket")
    tiny_row = next(line for line in lines if line.startswith("| hapt | tiny |"))
    baseline_row = next(line for line in lines if line.startswith("| hapt | minirocket |"))
    assert tiny_row.split("|")[-2].strip()[0] in "+-" and baseline_row.split("|")[-2].strip() == "–"
