#!/usr/bin/env bash
# Set up (if needed), then train SANN on HAPT for a few epochs and evaluate it on the test subjects.
# Uses ../shared/datasets when it exists, saving it as the data folder (`harkit config set data-dir`) so later
# commands find it; else HARKIT_DATA_DIR, the saved data folder or the user cache (downloading there).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
if [ -d ../shared/datasets ]; then
    harkit config set data-dir ../shared/datasets
fi
harkit train --dataset hapt --model sann --epochs "${EPOCHS:-5}" --seed 0 --out runs/quickstart --overwrite "$@"
