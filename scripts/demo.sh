#!/usr/bin/env bash
# Set everything up, then run the project's demo workflow (`spacy project run all`):
# demo data -> DocBin -> rsft_ner trained uniform and rejection-sampled, rsft_entity_linker
# -> evaluation -> project/training/report.md with plots. Offline; 3-10 minutes on 2 CPU
# cores (README).
#
# The two NER trainings are independent, so they run side by side first (the KB is built
# before the uniform one), each with half the cores' threads: on 2 cores torch's second
# thread speeds an update of this size up 1.4x, not 2x, so two processes with one thread
# each get more done than one after the other with two (356 s against 547 s for the whole
# demo, with the other changes of that commit; three processes on 2 cores took 401 s).
# `all` then skips what they did (weasel reruns a command only when its deps or outputs
# changed; should both finish at the same instant and one's lock entry be lost, `all`
# trains it again) and runs the linker, the evaluation and the report. Extra arguments
# (e.g. --vars.seed 1) go to every `spacy project run`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=project bash scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# weasel is what `spacy project` runs; called directly it starts in 1 s instead of 5.
run() { .venv/bin/python -m weasel run "$1" project "${@:2}"; }
run demo-data "$@"
run convert "$@"
export OMP_NUM_THREADS=$(( $(nproc) / 2 > 1 ? $(nproc) / 2 : 1 ))
(run build-kb "$@" && run train-uniform "$@") &
first=$!
run train-rsft "$@" &
second=$!
wait "$first"
wait "$second"
unset OMP_NUM_THREADS
run all "$@"
echo "Report: $(pwd)/project/training/report.md"
