"""`harkit runs`: list the runs under a folder, compare runs side by side; each run has its own report.html."""

import json
import shutil

from typer.testing import CliRunner

from harkit.cli import app
from tests.test_cli import train_args

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "250"})


def test_runs_lists_finished_interrupted_and_failed_runs(hapt_dir, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    assert invoke(*train_args(hapt_dir, root / "a", "cnn")).exit_code == 0
    metrics = json.loads((root / "a" / "metrics.json").read_text())
    # an interrupted copy (no metrics yet) and a failed one
    shutil.copytree(root / "a", root / "group" / "b")
    (root / "group" / "b" / "metrics.json").unlink()
    shutil.copytree(root / "group" / "b", root / "group" / "c")
    (root / "group" / "c" / "failed.json").write_text('{"error": "boom"}')

    result = invoke("runs", root)
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    assert set(lines) == {"a", "group/b", "group/c"}, result.output
    assert f"{metrics['accuracy']:.4f}" in lines["a"] and f"{metrics['macro_f1']:.4f}" in lines["a"]
    assert "hapt" in lines["a"] and "cnn" in lines["a"] and "finished" in lines["a"]
    assert "interrupted" in lines["group/b"] and "failed" in lines["group/c"]

    monkeypatch.chdir(tmp_path)
    assert "3 runs under runs" in invoke("runs").output  # the default folder is ./runs
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("runs", empty)
    assert result.exit_code == 2 and "no runs under" in result.output


def test_runs_compares_side_by_side(hapt_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke(*train_args(hapt_dir, a, "cnn")).exit_code == 0
    result = invoke(*train_args(hapt_dir, b, "cnn"), "--lr", 0.002)
    assert result.exit_code == 0, result.output
    result = invoke("runs", a, b)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") == 4}
    assert "lr *" in rows and "model" in rows and "seed" in rows  # what differs is marked
    assert "0.002" in rows["lr *"]
    for run in (a, b):
        accuracy = json.loads((run / "metrics.json").read_text())["accuracy"]
        assert f"{accuracy:.4f}" in rows.get("accuracy", rows.get("accuracy *"))
    result = invoke("runs", a, tmp_path / "nothing")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_a_run_has_its_own_report(hapt_dir, tmp_path):
    run = tmp_path / "run"
    assert invoke(*train_args(hapt_dir, run, "cnn")).exit_code == 0
    page = (run / "report.html").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"<td>{metrics['macro_f1']:.4f}</td>" in page
    for row in metrics["per_class"]:
        assert f"<td>{row['class']}</td><td>{row['precision']:.3f}</td>" in page
    assert page.count('src="data:image/png;base64,') == 3  # curves, per class, confusion
