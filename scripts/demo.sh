#!/usr/bin/env bash
# Set everything up, then run the project's demo workflow (`spacy project run all`):
# demo data -> DocBin -> rsft_ner trained uniform and rejection-sampled -> evaluation ->
# project/training/report.md with plots. Offline; 5-10 minutes on 2 CPU cores (README).
#
# The two NER trainings are independent, so they run side by side first, each on half the
# cores: on 2 cores that is 1.4x the throughput of one after the other with 2 threads each
# (torch's second thread speeds an update of this size up 1.4x, not 2x). `all` then skips
# them (weasel reruns a command only when its deps or outputs changed) and runs the rest.
# Extra arguments (e.g. --vars.seed 1) go to every `spacy project run`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=project bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
run() { .venv/bin/python -m spacy project run "$1" project "${@:2}"; }
run demo-data "$@"
run convert "$@"
threads=$(( $(nproc) / 2 > 1 ? $(nproc) / 2 : 1 ))
OMP_NUM_THREADS=$threads run train-uniform "$@" &
uniform=$!
OMP_NUM_THREADS=$threads run train-rsft "$@" &
rsft=$!
wait "$uniform"
wait "$rsft"
run all "$@"
echo "Report: $(pwd)/project/training/report.md"
