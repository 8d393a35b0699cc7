"""The rejection-sampling reader, end to end through `spacy train`."""
import json
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.cli.train import train
from spacy.tokens import DocBin
from spacy.util import registry
from thinc.api import Config

from spacy_rsft.sampling.reader import READER_NAME, RejectionSampledCorpus
from spacy_rsft.sampling.scoring import recording_components
from spacy_rsft.ty import ExampleLossScorer, LossRecorder, SkipCounter
from spacy_rsft.util import EXAMPLE_ID_KEY
from util import TRAIN_DATA, make_examples, noisy_ner_data, tiny_ner_config

ROOT = Path(__file__).resolve().parents[1]
NER_CONFIG = ROOT / "project" / "configs" / "rsft_ner.cfg"  # written by init-config


def write_docbin(path: Path, data) -> Path:
    nlp = spacy.blank("en")
    DocBin(docs=[eg.reference for eg in make_examples(nlp, data)]).to_disk(path)
    return path


def rsft_config(tmp_path, tiny_bert, train_path, reader_settings, **training):
    config = Config().from_disk(NER_CONFIG, interpolate=False)
    config["paths"]["train"] = str(train_path)
    config["paths"]["dev"] = str(train_path)
    config["paths"]["model"] = tiny_bert
    config["components"]["rsft_ner"]["model"]["hidden_width"] = 32
    config["corpora"]["train"] = {"@readers": READER_NAME, "path": "${paths.train}", **reader_settings}
    config["training"].update(
        {"max_epochs": -1, "max_steps": 60, "eval_frequency": 30, **training}
    )
    config["training"]["batcher"]["size"] = 100
    config["training"]["optimizer"]["learn_rate"] = {
        "@schedules": "warmup_linear.v1", "warmup_steps": 5, "total_steps": 200, "initial_rate": 0.003
    }
    path = tmp_path / "config.cfg"
    config.to_disk(path)
    return path


def read_stats(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def noisy_corpus(tmp_path_factory):
    data, corrupted = noisy_ner_data(48, seed=0)
    path = write_docbin(tmp_path_factory.mktemp("noisy") / "train.spacy", data)
    return path, corrupted, len(data)


def acceptance_by_group(stats, corrupted, n):
    counts = numpy.zeros(n)
    epochs = [line for line in stats if not line["warmup"]]
    for line in epochs:
        counts[line["accepted_indices"]] += 1
    clean = [i for i in range(n) if i not in set(corrupted)]
    return counts[clean].mean() / len(epochs), counts[corrupted].mean() / len(epochs)


@pytest.mark.parametrize("target", ["denoise", "hard"])
def test_spacy_train_denoise_and_hard_on_corrupted_half(tmp_path, tiny_bert, noisy_corpus, target):
    train_path, corrupted, n = noisy_corpus
    stats_path = tmp_path / "stats.jsonl"
    settings = {"target": target, "temperature": 0.25, "warmup_epochs": 2, "stats_path": str(stats_path), "seed": 1}
    config_path = rsft_config(tmp_path, tiny_bert, train_path, settings, max_steps=120)
    train(config_path, tmp_path / "out")
    stats = read_stats(stats_path)
    assert [line["epoch"] for line in stats] == list(range(len(stats)))
    assert len(stats) >= 5
    assert all(line["proposed"] == n for line in stats)
    assert all(line["accepted"] == n for line in stats[:2])
    for line in stats:
        assert line["accepted"] == len(line["accepted_indices"])
        assert sum(line["accepted_per_label"].values()) >= 1
    clean_rate, corrupted_rate = acceptance_by_group(stats, corrupted, n)
    if target == "denoise":
        assert clean_rate > corrupted_rate + 0.1
    else:
        assert corrupted_rate > clean_rate + 0.1
    sampled = [line for line in stats if not line["warmup"]]
    assert all(line["scored"] == n for line in sampled)
    # Acceptance falls with the loss under denoise and rises under hard, so over the
    # run the accepted examples' mean loss sits below (denoise) or above (hard) the
    # rejected ones'. Single epochs are noisy draws; the run average is not.
    gaps = [
        line["mean_loss_rejected"] - line["mean_loss_accepted"]
        for line in sampled
        if line["mean_loss_rejected"] is not None
    ]
    assert gaps and (numpy.mean(gaps) > 0) == (target == "denoise")


def test_uniform_reader_accepts_all_and_writes_one_line_per_epoch(tmp_path, tiny_bert):
    train_path = write_docbin(tmp_path / "train.spacy", TRAIN_DATA)
    stats_path = tmp_path / "stats.jsonl"
    config_path = rsft_config(tmp_path, tiny_bert, train_path, {"stats_path": str(stats_path)}, max_steps=10)
    train(config_path, tmp_path / "out")
    stats = read_stats(stats_path)
    assert len(stats) >= 3
    for line in stats:
        assert line["accepted"] == line["proposed"] == len(TRAIN_DATA)
        assert line["accepted_indices"] == list(range(len(TRAIN_DATA)))
        assert line["component_skips"]["rsft_ner"] == {"misaligned_gold_tokens": 0, "unknown_label_tokens": 0, "nonfinite_updates": 0}
        assert line["accepted_per_label"] == {"LOC": 4, "ORG": 3, "PER": 3}


def test_max_epochs_must_be_minus_one(tmp_path, tiny_bert):
    train_path = write_docbin(tmp_path / "train.spacy", TRAIN_DATA)
    config_path = rsft_config(tmp_path, tiny_bert, train_path, {"target": "hard"}, max_epochs=5)
    with pytest.raises(ValueError, match=r"max_epochs = -1"):
        train(config_path, tmp_path / "out")


def test_training_must_be_able_to_stop(tmp_path, tiny_bert):
    train_path = write_docbin(tmp_path / "train.spacy", TRAIN_DATA)
    config_path = rsft_config(tmp_path, tiny_bert, train_path, {}, max_steps=0, patience=0)
    with pytest.raises(ValueError, match=r"max_steps"):
        train(config_path, tmp_path / "out")


def test_bad_paths_and_empty_corpus(tmp_path):
    with pytest.raises(ValueError, match=r"does not exist.*paths.train"):
        RejectionSampledCorpus(tmp_path / "missing.spacy")
    with pytest.raises(ValueError, match=r"does not exist"):
        RejectionSampledCorpus(None)
    DocBin(docs=[]).to_disk(tmp_path / "empty.spacy")
    reader = RejectionSampledCorpus(tmp_path / "empty.spacy")
    with pytest.raises(ValueError, match=r"no usable examples"):
        list(reader(spacy.blank("en")))
    with pytest.raises(ValueError, match=r"`scoring`"):
        RejectionSampledCorpus(tmp_path / "empty.spacy", scoring="sometimes")


def test_registered_reader_and_defaults(tmp_path):
    path = write_docbin(tmp_path / "train.spacy", TRAIN_DATA)
    reader = registry.resolve(Config().from_str(f"""
[corpus]
@readers = "{READER_NAME}"
path = "{path}"
target = "denoise+balanced"
"""))["corpus"]
    assert isinstance(reader, RejectionSampledCorpus)
    assert reader.sampler.targets == ["denoise", "balanced"]
    # Outside training (no optimizer yet: nlp.initialize reading the corpus) the reader
    # yields everything, tagged with stable ids, and counts no epoch.
    examples = list(reader(spacy.blank("en")))
    assert [eg.reference.user_data[EXAMPLE_ID_KEY] for eg in examples] == list(range(len(TRAIN_DATA)))
    assert reader.epoch == 0 and reader.stats == []


def test_the_corpus_is_read_once_and_each_epoch_gets_fresh_predicted_docs(tmp_path):
    path = write_docbin(tmp_path / "train.spacy", TRAIN_DATA)
    reader = RejectionSampledCorpus(path)
    nlp = spacy.blank("en")
    first = reader.load_examples(nlp)
    first[0].predicted.ents = [first[0].predicted[0:1]]  # as an annotating component might
    (tmp_path / "train.spacy").unlink()  # not read again
    second = reader.load_examples(nlp)
    assert second[0].predicted is not first[0].predicted and not second[0].predicted.ents
    assert [eg.reference for eg in second] == [eg.reference for eg in first]
    assert [eg.predicted.user_data[EXAMPLE_ID_KEY] for eg in second] == list(range(len(TRAIN_DATA)))
    assert [eg.predicted.text for eg in second] == [eg.reference.text for eg in second]
    assert second[0].alignment is first[0].alignment
    # a new pipeline (another vocab) reads the file again
    with pytest.raises(ValueError, match="train.spacy"):
        reader.load_examples(spacy.blank("en"))


def test_generic_fresh_scoring_with_builtin_ner(tmp_path):
    """Any trainable component: spaCy's own `ner`, scored by 1 - F1 in a fresh pass."""
    train_path = write_docbin(tmp_path / "train.spacy", TRAIN_DATA * 4)
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    stats_path = tmp_path / "stats.jsonl"
    config = nlp.config.copy()
    config["paths"]["train"] = config["paths"]["dev"] = str(train_path)
    config["corpora"] = {
        "train": {"@readers": READER_NAME, "path": "${paths.train}", "target": "hard", "scoring": "fresh", "warmup_epochs": 1, "stats_path": str(stats_path)},
        "dev": {"@readers": "spacy.Corpus.v1", "path": "${paths.dev}"},
    }
    config["training"].update({"max_epochs": -1, "max_steps": 40, "eval_frequency": 20})
    config["training"]["batcher"] = {"@batchers": "spacy.batch_by_words.v1", "size": 60, "tolerance": 0.2, "discard_oversize": False}
    config.to_disk(tmp_path / "config.cfg")
    train(tmp_path / "config.cfg", tmp_path / "out")
    stats = read_stats(stats_path)
    sampled = [line for line in stats if not line["warmup"]]
    assert sampled and all(line["scored"] == len(TRAIN_DATA) * 4 for line in sampled)
    # Every example gets an error, 1 - its F1, in every sampled epoch.
    errors = [loss for line in sampled for loss in line["accepted_losses"] + line["rejected_losses"]]
    assert len(errors) == len(sampled) * len(TRAIN_DATA) * 4
    assert all(0.0 <= e <= 1.0 for e in errors)


def test_cached_scoring_needs_a_recording_component(tmp_path):
    train_path = write_docbin(tmp_path / "train.spacy", TRAIN_DATA)
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    config = nlp.config.copy()
    config["paths"]["train"] = config["paths"]["dev"] = str(train_path)
    config["corpora"] = {
        "train": {"@readers": READER_NAME, "path": "${paths.train}", "target": "hard"},
        "dev": {"@readers": "spacy.Corpus.v1", "path": "${paths.dev}"},
    }
    config["training"].update({"max_epochs": -1, "max_steps": 5})
    config.to_disk(tmp_path / "config.cfg")
    with pytest.raises(ValueError, match=r"scoring = \"fresh\""):
        train(tmp_path / "config.cfg", tmp_path / "out")


def test_initialization_sees_every_label_first(tmp_path, tiny_bert):
    """spaCy initializes from only the first 100 examples of a streamed corpus: a label
    that first occurs later must still be known."""
    data = [("John visited Paris .", [(0, 4, "PER"), (13, 18, "LOC")])] * 150
    data += [("The Olympics began .", [(4, 12, "MISC")])]
    train_path = write_docbin(tmp_path / "train.spacy", data)
    config_path = rsft_config(tmp_path, tiny_bert, train_path, {}, max_steps=2)
    train(config_path, tmp_path / "out")
    assert set(spacy.load(tmp_path / "out" / "model-last").get_pipe("rsft_ner").labels) == {"PER", "LOC", "MISC"}


def test_components_implement_the_reader_contract(tiny_bert):
    """Both components record, score and count for the reader; spaCy's ner does none."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("rsft_ner", config=tiny_ner_config(tiny_bert))
    el = nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}})
    plain = nlp.add_pipe("ner", name="spacy_ner")
    for proc in (ner, el):
        assert isinstance(proc, LossRecorder)
        assert isinstance(proc, ExampleLossScorer)
        assert isinstance(proc, SkipCounter)
    assert not isinstance(plain, (LossRecorder, ExampleLossScorer, SkipCounter))
    assert recording_components(nlp) == ["rsft_ner", "rsft_entity_linker"]


@pytest.mark.parametrize("package", ["kb", "sampling"])
def test_lower_layers_do_not_import_the_pipeline(package):
    """kb/ and sampling/ talk to the components only through spacy_rsft.ty."""
    import ast

    def imported(node):
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if not isinstance(node, ast.ImportFrom):
            return []
        if node.level == 0:
            return [node.module]
        base = "spacy_rsft" if node.level == 2 else f"spacy_rsft.{package}"
        module = f"{base}.{node.module}" if node.module else base
        return [module] + [f"{module}.{alias.name}" for alias in node.names]

    for path in sorted((ROOT / "spacy_rsft" / package).glob("*.py")):
        names = [name for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))) for name in imported(node)]
        assert names, path.name
        assert not [name for name in names if name.startswith("spacy_rsft.pipeline")], path.name
