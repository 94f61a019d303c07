"""Two processes under torchrun (gloo, CPU) train like one process."""

import csv
import json
import os
import subprocess
import sys

import pytest


def history(run):
    with open(run / "history.csv") as handle:
        return list(csv.DictReader(handle))


def harkit_train(hapt_dir, run, launcher, model_args, tmp_path):
    args = [
        "train",
        "--dataset",
        "hapt",
        "--data-dir",
        str(hapt_dir),
        "--window",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--val-fraction",
        "0.5",
        "--threads",
        "1",
        "--patience",
        "0",
        "--out",
        str(run),
        "--no-progress",
        *model_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [*launcher, "-m", "harkit", *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize(
    ("model_args", "tolerance"),
    [
        # no batch norm: two half-batches with averaged gradients are one batch, up to rounding
        (["--model", "lstm", "--model-option", "hidden=16"], 1e-4),
        # batch norm sees half a batch per process: close, not equal
        (["--model", "sann", "--width", "0.125"], 0.25),
    ],
)
def test_two_processes_match_one(hapt_dir, tmp_path, model_args, tolerance):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    single = harkit_train(hapt_dir, tmp_path / "single", [sys.executable], model_args, tmp_path)
    double = harkit_train(hapt_dir, tmp_path / "double", torchrun, model_args, tmp_path)
    one, two = history(tmp_path / "single"), history(tmp_path / "double")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two, strict=True):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=tolerance, abs=tolerance)
    assert double["accuracy"] == pytest.approx(single["accuracy"], abs=max(tolerance, 1e-6) * 2)
    assert not (tmp_path / "double" / "fold-00").exists()
