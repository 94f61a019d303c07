#!/usr/bin/env bash
# Set up (if needed) and run the checks: ruff, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check src tests benchmarks
ruff format --check src tests benchmarks
python -m pytest "$@"
