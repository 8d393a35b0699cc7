#!/usr/bin/env bash
# Set everything up, then run the project's demo workflow (`spacy project run all`):
# demo data -> DocBin -> rsft_ner trained uniform and rejection-sampled, rsft_entity_linker
# -> evaluation -> project/training/report.md with plots. Offline; 5-10 minutes on 2 CPU
# cores (README).
#
# The three trainings are independent, so they run side by side first, with one thread each
# per 3 cores: on 2 cores torch's second thread speeds an update of this size up 1.4x, not
# 2x, so processes side by side get more done than one process with every thread. `all`
# then skips them (weasel reruns a command only when its deps or outputs changed; should two
# finish at the same instant and one's lock entry be lost, `all` trains it again) and runs
# the evaluation and the report. Extra arguments (e.g. --vars.seed 1) go to every
# `spacy project run`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=project bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
run() { .venv/bin/python -m spacy project run "$1" project "${@:2}"; }
for step in demo-data convert build-kb; do
  run "$step" "$@"
done
threads=$(( $(nproc) / 3 > 1 ? $(nproc) / 3 : 1 ))
pids=()
for step in train-uniform train-rsft train-el; do
  OMP_NUM_THREADS=$threads run "$step" "$@" &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid"
done
run all "$@"
echo "Report: $(pwd)/project/training/report.md"
