#!/usr/bin/env bash
# Set everything up, then run the project's demo workflow (`spacy project run all`):
# demo data -> DocBin -> rsft_ner trained uniform and rejection-sampled -> evaluation ->
# project/training/report.md with plots. Offline; 5.5-10 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m spacy project run all project "$@"
echo "Report: $(pwd)/project/training/report.md"
