#!/usr/bin/env bash
# Create .venv with harkit and its test tools. Safe to run again: an existing environment is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=(-q)  # a second run only checks what is installed: no screens of "Requirement already satisfied"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv; pip shows its downloads"
    python3 -m venv .venv
    quiet=()
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of PyTorch first, so nothing pulls a multi-gigabyte CUDA build.
echo "setup: PyTorch 2.13 (CPU build, about 200 MB the first time)"
python -m pip install ${quiet[@]+"${quiet[@]}"} "torch==2.13.0"
echo "setup: harkit and its dependencies"
python -m pip install ${quiet[@]+"${quiet[@]}"} -e ".[dev]"
echo "setup: done (. .venv/bin/activate puts harkit on the path)"
