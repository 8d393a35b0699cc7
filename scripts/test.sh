#!/usr/bin/env bash
# Set everything up, then run the default (fast, offline) test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh --runslow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
