#!/usr/bin/env bash
# Set up (if needed), then train SANN on HAPT for a few epochs and evaluate it on the test subjects.
# Uses ../shared/datasets when it exists, else HARKIT_DATA_DIR or the user cache (downloading there).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
args=()
if [ -d ../shared/datasets ]; then
    args+=(--data-dir ../shared/datasets)
fi
harkit train --dataset hapt --model sann --epochs "${EPOCHS:-5}" --seed 0 --out runs/quickstart --overwrite "${args[@]}" "$@"
