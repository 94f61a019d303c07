#!/usr/bin/env bash
# Create .venv with harkit and its test tools. Safe to run again: an existing environment is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of PyTorch first, so nothing pulls a multi-gigabyte CUDA build.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
