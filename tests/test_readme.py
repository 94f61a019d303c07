"""Every shell command in README.md works when copied in order after the quick start.

The commands run as written, from a fresh folder laid out like the repository's checkout beside `../shared`, with
only these changes so the whole README takes a minute or two on two cores:

- `--epochs N` becomes `--epochs 1` (and `train`, `benchmark` and `tune` get `--epochs 1` when they have none);
- `train` with a convolutional `--model` (and the quick start) gets `--width 0.25`: a quarter of the filters;
- `--trials N` becomes `--trials 2`, `--seeds a,b,c` keeps its first seed, `--models a,b,c` its first two;
- `../shared/datasets` holds small synthetic HAPT and UCI-HAR trees instead of the real archives.

`scripts/quickstart.sh` runs for real with `EPOCHS=1`, with `scripts/setup.sh` replaced by a no-op (the test
already runs inside the set-up environment). Commands that cannot run here are skipped by `SKIP` below, each with
its reason; a command the test does not know fails it, so a new README command is either run or explained.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harkit.models import model_options
from tests.fixtures import raw

ROOT = Path(__file__).resolve().parents[1]

# (pattern searched in the command, why it is not run here)
SKIP = [
    (r"^bash scripts/test\.sh", "runs this test suite"),
    (r"^bash scripts/setup\.sh", "installs packages; the test runs inside the installed environment"),
    (r"^torchrun ", "two training processes; tests/training/test_distributed.py covers them"),
    (r"--storage postgresql", "needs a PostgreSQL server"),
    (r"--compile", "compiling takes 10-20 s; tests/training/test_compile.py covers it"),
    (r"^pip install", "installs packages"),
    (r" --ray\b", "needs Ray (pip install 'harkit[ray]'), an optional extra"),
]

pytestmark = pytest.mark.readme


def bash_commands(markdown: str) -> list[str]:
    """The commands of every ```bash block, in order (continuation lines joined, comments dropped)."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                commands.append(shlex.join(tokens))
    return commands


def shrink(tokens: list[str]) -> list[str]:
    """The same command with one epoch, narrow models, two trials, one seed and two models (see above)."""
    tokens = list(tokens)
    changes = {
        "--epochs": lambda v: "1",
        "--trials": lambda v: "2",
        "--seeds": lambda v: v.split(",")[0],
        "--models": lambda v: ",".join(v.split(",")[:2]),
    }
    for option, value in changes.items():
        if option in tokens:
            index = tokens.index(option) + 1
            tokens[index] = value(tokens[index])
    if tokens[1] in ("train", "benchmark", "tune") and "--epochs" not in tokens:
        tokens += ["--epochs", "1"]
    model = tokens[tokens.index("--model") + 1] if "--model" in tokens else None  # none: auto chooses
    if tokens[1] == "train" and model and "--width" not in tokens and "width" in model_options(model):
        tokens += ["--width", "0.25"]
    return tokens


def write_hapt(folder: Path, subjects=(1, 2, 3, 4, 5), samples: int = 300) -> None:
    """A HAPT tree: each subject does the six activities for `samples` samples each (3 windows of 128)."""
    raw_dir = folder / "HAPT Data Set" / "RawData"
    raw_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = []
    for subject in subjects:
        t = np.arange(6 * samples) / 50.0
        activity = np.repeat(np.arange(6), samples)
        # Each activity its own frequency, so a model can learn something in one epoch.
        acc = np.sin(2 * np.pi * (activity + 1)[:, None] * t[:, None] * [1, 1.3, 0.7]) + rng.normal(0, 0.1, (len(t), 3))
        experiment = 2 * subject - 1  # as in HAPT: user 2 recorded experiments 3 and 4
        for name, values in (("acc", acc), ("gyro", -acc)):
            np.savetxt(raw_dir / f"{name}_exp{experiment:02d}_user{subject:02d}.txt", values, fmt="%.7e")
        labels += [(experiment, subject, a + 1, a * samples, (a + 1) * samples - 1) for a in range(6)]
    np.savetxt(raw_dir / "labels.txt", np.array(labels), fmt="%d")


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """`tmp/main` (the working directory, with the scripts) beside `tmp/shared/datasets` (the data)."""
    data = tmp_path / "shared" / "datasets"
    write_hapt(data)
    raw.write_uci_har(data)
    main = tmp_path / "main"
    shutil.copytree(ROOT / "scripts", main / "scripts")
    shutil.copytree(ROOT / "examples", main / "examples")
    (main / "scripts" / "setup.sh").write_text("#!/usr/bin/env bash\n")  # the environment is set up already
    (main / ".venv" / "bin").mkdir(parents=True)
    (main / ".venv" / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    monkeypatch.delenv("HARKIT_DATA_DIR")  # the quick start's saved data folder must be what commands find
    monkeypatch.chdir(main)
    return main


def run_command(command: str, checkout: Path) -> str:
    """Run one README command; returns its output, failing the test with it when the command fails."""
    tokens = shlex.split(command)
    if tokens[:2] == ["bash", "scripts/quickstart.sh"]:
        env = os.environ | {"EPOCHS": "1", "COLUMNS": "120"}
        command_line = [*tokens, "--width", "0.25"]
        result = subprocess.run(command_line, cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command} failed:\n{output}"
        return output
    if tokens[0] == "python" and tokens[1].startswith("examples/"):
        result = subprocess.run(
            [sys.executable, *tokens[1:]], cwd=checkout, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{command} failed:\n{result.stdout + result.stderr}"
        return result.stdout
    assert tokens[0] == "harkit", f"README command {command!r} is neither run nor listed in SKIP with a reason"
    from harkit.cli import app

    logging.getLogger().handlers.clear()  # the CLI's logging handler of the previous command wrote to its output
    result = CliRunner().invoke(app, shrink(tokens)[1:], catch_exceptions=False, env={"COLUMNS": "120"})
    assert result.exit_code == 0, f"{command} failed:\n{result.output}"
    return result.output


def test_readme_commands_run_in_order(checkout):
    commands = bash_commands((ROOT / "README.md").read_text())
    assert commands[0].startswith("bash scripts/quickstart.sh"), "README starts with the quick start"
    ran = []
    for command in commands:
        if any(re.search(pattern, command) for pattern, _ in SKIP):
            continue
        began = time.perf_counter()
        output = run_command(command, checkout)
        print(f"{time.perf_counter() - began:6.1f} s  {command}")  # shown with pytest -s
        ran.append(command)
        if command.startswith("bash scripts/quickstart.sh"):
            # The quick start ends loud: the run folder, the metrics and the next commands.
            assert "runs/quickstart" in output and "macro F1" in output and "harkit evaluate" in output
    assert len(ran) >= 10, ran
