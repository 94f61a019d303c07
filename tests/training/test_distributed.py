"""Two processes under torchrun (gloo, CPU) train like one process: the same weights, within rounding."""

import csv
import os
import subprocess
import sys

import pytest
import torch

from harkit.training.checkpoint import load_checkpoint


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
        # the article's recipe (no augmentation, no warm-up), in fp32 and eager, so the only difference between
        # one process and two is how the batch is split
        "--recipe",
        "article",
        "--lr",
        "0.01",
        "--precision",
        "fp32",
        "--no-compile",
        "--dropout",
        "0",
        "--out",
        str(run),
        "--no-progress",
        *model_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HARKIT_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [*launcher, "-m", "harkit", *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return load_checkpoint(run / "last.pt")["state_dict"]


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
    assert single.keys() == double.keys()
    moved = 0.0
    for name, weight in single.items():
        if not weight.is_floating_point() or "running_" in name:
            continue  # batch counts; batch norm's running statistics are rank 0's half of each batch
        assert torch.allclose(double[name], weight, rtol=tolerance, atol=tolerance), name
        moved += float((weight - double[name]).abs().max())
    if tolerance < 1e-3:
        assert moved < 1e-3  # the weights themselves, not only the losses, agree
    assert not (tmp_path / "double" / "fold-00").exists()
