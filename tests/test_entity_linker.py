"""rsft_entity_linker and build-kb."""
import csv
import json
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.util import registry
from thinc.api import fix_random_seed

from spacy_rsft.kb.builder import KBInputError, build_kb

registry.ensure_populated()  # spaCy 3.8 registers its own functions lazily
from spacy_rsft.kb.candidates import CandidateGenerator, normalize_alias

ENTITIES = [
    {"id": "Q1", "name": "Paris", "description": "capital of France"},
    {"id": "Q2", "name": "Paris Hilton", "description": "American media personality"},
    {"id": "Q3", "name": "Machine Learning", "description": "field of computer science"},
]
ALIASES = [
    {"alias": "Paris", "entity": "Q1", "count": 8},
    {"alias": "Paris", "entity": "Q2", "count": 2},
    {"alias": "Paris Hilton", "entity": "Q2", "count": 1},
    {"alias": "Machine Learning", "entity": "Q3", "count": 1},
]
TRAIN = [
    ("Paris is the capital of France .", [(0, 5, "LOC", "Q1")]),
    ("Paris the celebrity posted a photo .", [(0, 5, "PER", "Q2")]),
    ("He studied machine learning at school .", [(11, 27, "MISC", "Q3")]),
    ("Jorvik is an old name .", [(0, 6, "LOC", "NIL")]),
]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    return path


@pytest.fixture(scope="module")
def toy_kb_dir(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("kb")
    build_kb(write_jsonl(tmp / "e.jsonl", ENTITIES), write_jsonl(tmp / "a.jsonl", ALIASES), tmp / "out", tiny_bert, progress=False)
    return tmp / "out"


def make_examples(nlp, data=TRAIN):
    examples = []
    for text, ents in data:
        doc = nlp.make_doc(text)
        ref = nlp.make_doc(text)
        ref.ents = [ref.char_span(s, e, label=l, kb_id=k) for s, e, l, k in ents]
        examples.append(Example(doc, ref))
    return examples


def make_el_nlp(tiny_bert, kb_dir, seed=0, **config):
    nlp = spacy.blank("en", config={"system": {"seed": seed}})
    el = nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}, **config})
    loader = registry.misc.get("spacy.KBFromFile.v1")(str(kb_dir / "kb"))
    el.initialize(lambda: make_examples(nlp), nlp=nlp, kb_loader=loader)
    return nlp


@pytest.fixture(scope="module")
def trained_el(tiny_bert, toy_kb_dir):
    """The linker overfit on TRAIN, with its per-example losses before training and the
    losses of its first and last update."""
    fix_random_seed(0)
    nlp = make_el_nlp(tiny_bert, toy_kb_dir)
    initial = nlp.get_pipe("rsft_entity_linker").get_example_losses(make_examples(nlp))
    optimizer = nlp.create_optimizer()
    optimizer.learn_rate = 0.005
    history = []
    for _ in range(20):
        history.append(nlp.update(make_examples(nlp), sgd=optimizer, losses={})["rsft_entity_linker"])
    return nlp, (history[0], history[-1]), initial


def link(nlp, text, spans):
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(s, e, label=l) for s, e, l in spans]
    return nlp.get_pipe("rsft_entity_linker")(doc)


def test_build_kb_contents(toy_kb_dir):
    kb = registry.misc.get("spacy.KBFromFile.v1")(str(toy_kb_dir / "kb"))(spacy.blank("en").vocab)
    assert kb.get_size_entities() == 3
    priors = {c.entity_: c.prior_prob for c in kb.get_alias_candidates("Paris")}
    assert priors == pytest.approx({"Q1": 0.8, "Q2": 0.2})
    assert kb.entity_vector_length == 64
    assert numpy.linalg.norm(kb.get_vector("Q1")) == pytest.approx(1.0, abs=1e-4)
    rows = [json.loads(line) for line in (toy_kb_dir / "entities.jsonl").read_text().splitlines()]
    assert [(row["id"], row["name"]) for row in rows] == [(e["id"], e["name"]) for e in ENTITIES]


def test_overfit_links_and_nil(trained_el):
    nlp, (first_loss, last_loss), _ = trained_el
    assert last_loss < 0.1 * first_loss
    for text, ents in TRAIN:
        doc = link(nlp, text, [(s, e, l) for s, e, l, _ in ents])
        assert [e.kb_id_ for e in doc.ents] == [k for *_, k in ents]


def test_scores_and_candidates(trained_el):
    nlp, *_ = trained_el
    doc = link(nlp, TRAIN[0][0], [(0, 5, "LOC")])
    ent = doc.ents[0]
    ids = [kb_id for kb_id, _ in ent._.kb_candidates]
    probs = [p for _, p in ent._.kb_candidates]
    assert sorted(ids) == ["Q1", "Q2"] and ids[0] == "Q1"
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs) and sum(probs) <= 1.0 + 1e-6
    assert ent._.kb_score == pytest.approx(probs[0])


def test_nil_without_candidates(trained_el):
    nlp, *_ = trained_el
    doc = link(nlp, "Zanzibar is far .", [(0, 8, "LOC")])
    assert doc.ents[0].kb_id_ == "NIL"
    assert doc.ents[0]._.kb_candidates == []
    assert doc.ents[0]._.kb_score == 1.0


def test_threshold_turns_low_confidence_into_nil(trained_el, tiny_bert, toy_kb_dir, tmp_path):
    nlp, *_ = trained_el
    score = link(nlp, TRAIN[0][0], [(0, 5, "LOC")]).ents[0]._.kb_score
    assert score < 1.0
    threshold = (1.0 + score) / 2
    nlp.to_disk(tmp_path / "el")
    strict = spacy.load(tmp_path / "el", config={"components": {"rsft_entity_linker": {"threshold": threshold}}})
    assert strict.get_pipe("rsft_entity_linker").threshold == threshold
    doc = link(strict, TRAIN[0][0], [(0, 5, "LOC")])
    assert doc.ents[0].kb_id_ == "NIL"
    assert doc.ents[0]._.kb_candidates[0][0] == "Q1"


def test_normalized_lookup():
    kb_gen = CandidateGenerator(normalize=True)
    assert normalize_alias("  Machine-Learning ") == "machinelearning"
    assert normalize_alias("machine learning") == normalize_alias("Machine Learning")
    nlp = spacy.blank("en")
    from spacy.kb import InMemoryLookupKB

    kb = InMemoryLookupKB(nlp.vocab, entity_vector_length=2)
    kb.add_entity("Q3", 1, [0.0, 1.0])
    kb.add_alias("Machine Learning", ["Q3"], [1.0])
    assert [c.entity for c in kb_gen(kb, "machine learning")] == ["Q3"]
    assert CandidateGenerator(normalize=False)(kb, "machine learning") == []
    fuzzy = CandidateGenerator(fuzzy=True, fuzzy_threshold=0.5)
    assert [c.entity for c in fuzzy(kb, "Machine Learnin")] == ["Q3"]


def test_quantized_linker_links_like_fp32_and_refuses_to_train(trained_el, tmp_path):
    from spacy_rsft.cli.quantize import quantize_pipeline
    from spacy_rsft.pipeline.quantization import is_quantized

    nlp, *_ = trained_el
    nlp.to_disk(tmp_path / "el")
    assert quantize_pipeline(tmp_path / "el", tmp_path / "int8") == ["rsft_entity_linker"]
    int8 = spacy.load(tmp_path / "int8")
    assert is_quantized(int8.get_pipe("rsft_entity_linker").model)
    for text, ents in TRAIN:
        spans = [(s, e, l) for s, e, l, _ in ents]
        a, b = link(nlp, text, spans), link(int8, text, spans)
        assert [e.kb_id_ for e in a.ents] == [e.kb_id_ for e in b.ents]
        for ea, eb in zip(a.ents, b.ents):
            assert ea._.kb_score == pytest.approx(eb._.kb_score, abs=0.05)
    with pytest.raises(ValueError, match="E317"):
        int8.update(make_examples(int8))


def test_save_load_and_pipe_equal_call(trained_el, tmp_path):
    nlp, *_ = trained_el
    nlp.to_disk(tmp_path / "el")
    loaded = spacy.load(tmp_path / "el")
    texts = [(t, [(s, e, l) for s, e, l, _ in ents]) for t, ents in TRAIN]
    for (text, spans), (_, gold) in zip(texts, TRAIN):
        a, b = link(nlp, text, spans), link(loaded, text, spans)
        assert [e.kb_id_ for e in a.ents] == [e.kb_id_ for e in b.ents] == [k for *_, k in gold]
        for ea, eb in zip(a.ents, b.ents):
            assert ea._.kb_score == pytest.approx(eb._.kb_score, abs=1e-5)
    docs = []
    for text, spans in texts:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(s, e, label=l) for s, e, l in spans]
        docs.append(doc)
    piped = list(nlp.get_pipe("rsft_entity_linker").pipe(docs, batch_size=2))
    for doc, (text, spans) in zip(piped, texts):
        single = link(nlp, text, spans)
        assert [e.kb_id_ for e in doc.ents] == [e.kb_id_ for e in single.ents]


def test_per_example_losses(trained_el):
    nlp, _, initial = trained_el
    el = nlp.get_pipe("rsft_entity_linker")
    unlinked = ("Nothing to link here .", [(0, 7, "MISC", "")])
    values = el.get_example_losses(make_examples(nlp, TRAIN + [unlinked]))
    assert values.shape == (len(TRAIN) + 1,)
    # Training lowered the loss of every example with a choice to make; Jorvik has no
    # candidate, so NIL is certain (loss 0); a mention without a gold id is not scored.
    assert numpy.all(values[:3] < 0.5 * initial[:3])
    assert values[3] == initial[3] == 0.0
    assert numpy.isnan(values[-1])


def test_mention_losses_land_on_their_tokens(tiny_bert, toy_kb_dir):
    from spacy_rsft.ty import TokenLossRecorder
    from spacy_rsft.util import set_example_id

    nlp = make_el_nlp(tiny_bert, toy_kb_dir)
    el = nlp.get_pipe("rsft_entity_linker")
    assert isinstance(el, TokenLossRecorder)
    examples = make_examples(nlp)
    for i, eg in enumerate(examples):
        set_example_id(eg, i)
    nlp.update(examples, sgd=nlp.create_optimizer())
    recorded = el.pop_recorded_token_losses()
    example_losses = el.pop_recorded_losses()
    assert recorded and set(recorded) == set(example_losses)
    for i, losses in recorded.items():
        ref = examples[i].reference
        mention_tokens = {t for ent in ref.ents if ent.kb_id_ for t in range(ent.start, ent.end)}
        scored = set(numpy.flatnonzero(~numpy.isnan(losses)).tolist())
        assert scored and scored <= mention_tokens  # mentions only (a skipped one stays NaN)
        # the example's loss is the mean of its mentions' losses
        per_mention = [float(losses[ent.start]) for ent in ref.ents if ent.start in scored]
        assert numpy.mean(per_mention) == pytest.approx(example_losses[i], rel=1e-5)
    assert el.pop_recorded_token_losses() == {}


def test_fresh_token_losses_put_each_mention_loss_on_its_tokens(tiny_bert, toy_kb_dir):
    """`fresh` scoring of span/sentence units: the linker is a TokenLossScorer, and a
    mention's tokens get its loss, the same as the example loss says."""
    from spacy_rsft.ty import TokenLossScorer

    nlp = make_el_nlp(tiny_bert, toy_kb_dir)
    el = nlp.get_pipe("rsft_entity_linker")
    assert isinstance(el, TokenLossScorer)
    unlinked = ("Nothing to link here .", [(0, 7, "MISC", "")])
    examples = make_examples(nlp, TRAIN + [unlinked])
    tokens = el.get_token_losses(examples)
    per_example = el.get_example_losses(examples)
    assert [len(t) for t in tokens] == [len(eg.reference) for eg in examples]
    assert numpy.isnan(tokens[-1]).all()  # no gold id: nothing scored
    for eg, losses, mean in zip(examples[:-1], tokens, per_example):
        starts = [ent.start for ent in eg.reference.ents if ent.kb_id_]
        assert numpy.mean([losses[s] for s in starts]) == pytest.approx(mean, rel=1e-5)
        outside = [t for t in range(len(eg.reference)) if not any(e.start <= t < e.end for e in eg.reference.ents)]
        assert numpy.isnan(losses[outside]).all()


def test_hard_negatives_follow_the_training_seed(tiny_bert, toy_kb_dir):
    # 29 negatives with acceptance exp(-1.2) ~ 0.3 and one with 1: about 10 are drawn,
    # under the cap, so the subset is the random draw itself.
    entities = ["gold"] + [f"neg{i}" for i in range(30)]
    scores = numpy.asarray([0.0, 0.0] + [-1.2] * 29)

    def draws(seed):
        el = make_el_nlp(tiny_bert, toy_kb_dir, seed=seed, max_train_candidates=25).get_pipe("rsft_entity_linker")
        return [el._training_subset(scores, entities, "gold") for _ in range(3)]

    first = draws(1)
    assert all(subset[:2] == [0, 1] and 2 < len(subset) < 25 for subset in first)
    assert draws(1) == first
    assert draws(2) != first


def test_prior_baseline(toy_kb_dir, tmp_path):
    from spacy.tokens import DocBin

    from spacy_rsft.kb.baseline import prior_baseline

    nlp = spacy.blank("en")
    DocBin(docs=[eg.reference for eg in make_examples(nlp)]).to_disk(tmp_path / "gold.spacy")
    scores = prior_baseline(toy_kb_dir / "kb", tmp_path / "gold.spacy")
    # "Paris" goes to its most likely sense Q1, wrong for the celebrity; Jorvik has no
    # candidate and is NIL.
    assert scores["nel_inkb_accuracy"] == pytest.approx(2 / 3)
    assert scores["nel_nil_r"] == 1.0
    with pytest.raises(ValueError, match=r"E315.*'prior' or 'frequency'"):
        prior_baseline(toy_kb_dir / "kb", tmp_path / "gold.spacy", by="popularity")


def test_scorer_reports_inkb_accuracy_and_candidate_recall(trained_el):
    nlp, *_ = trained_el
    scores = nlp.evaluate(make_examples(nlp))
    assert scores["nel_inkb_accuracy"] == 1.0
    assert scores["nel_candidate_recall"] == 1.0
    assert scores["nel_nil_r"] == 1.0
    assert scores["nel_micro_f"] == 1.0


def test_works_after_entity_ruler(trained_el, tmp_path):
    nlp, *_ = trained_el
    nlp.to_disk(tmp_path / "el")
    pipeline = spacy.load(tmp_path / "el")
    ruler = pipeline.add_pipe("entity_ruler", before="rsft_entity_linker")
    ruler.add_patterns([{"label": "LOC", "pattern": "Paris"}])
    doc = pipeline("Paris is the capital of France .")
    assert [(e.text, e.kb_id_) for e in doc.ents] == [("Paris", "Q1")]


def test_missing_kb_is_a_clear_error(tiny_bert):
    nlp = spacy.blank("en")
    el = nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}})
    with pytest.raises(ValueError, match="kb_loader"):
        el.initialize(lambda: make_examples(nlp), nlp=nlp)


@pytest.mark.parametrize(
    "entities,aliases,message",
    [
        ([{"name": "no id"}], [], "without an id"),
        ([{"id": "Q1", "name": "a"}, {"id": "Q1", "name": "b"}], [], "duplicate entity id"),
        ([{"id": "Q1", "name": "a"}], [{"alias": "a", "entity": "Q9", "count": 1}], "unknown entity"),
        ([{"id": "Q1", "name": "a"}], [{"alias": "a", "entity": "Q1", "prob": 1.5}], r"not in \[0, 1\]"),
        (
            [{"id": "Q1", "name": "a"}, {"id": "Q2", "name": "b"}],
            [{"alias": "a", "entity": "Q1", "prob": 0.7}, {"alias": "a", "entity": "Q2", "prob": 0.6}],
            "sum to",
        ),
    ],
)
def test_build_kb_bad_input(tmp_path, entities, aliases, message):
    out = tmp_path / "out"
    fake_encoder = lambda texts: numpy.ones((len(texts), 4), dtype="float32")
    with pytest.raises(KBInputError, match=message):
        build_kb(write_jsonl(tmp_path / "e.jsonl", entities), write_jsonl(tmp_path / "a.jsonl", aliases), out, encoder=fake_encoder)
    assert not out.exists()
    # An existing good KB is left untouched by a failed rebuild.
    good = [{"id": "Q1", "name": "a"}, {"id": "Q2", "name": "b"}]
    build_kb(write_jsonl(tmp_path / "g.jsonl", good), None, out, encoder=fake_encoder)
    before = (out / "entities.jsonl").read_text()
    with pytest.raises(KBInputError):
        build_kb(write_jsonl(tmp_path / "e.jsonl", entities), write_jsonl(tmp_path / "a.jsonl", aliases), out, encoder=fake_encoder)
    assert (out / "entities.jsonl").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_build_kb_skip_bad_rows(tmp_path):
    entities = [{"id": "Q1", "name": "a"}, {"name": "no id"}, {"id": "Q1", "name": "dup"}]
    fake_encoder = lambda texts: numpy.ones((len(texts), 4), dtype="float32")
    with pytest.warns(UserWarning, match="Skipped 2 bad entity"):
        kb = build_kb(write_jsonl(tmp_path / "e.jsonl", entities), None, tmp_path / "out", encoder=fake_encoder, skip_bad_rows=True)
    assert kb.get_size_entities() == 1


def test_build_kb_csv_and_tsv(tmp_path):
    fake_encoder = lambda texts: numpy.ones((len(texts), 4), dtype="float32")
    for suffix, delimiter in ((".csv", ","), (".tsv", "\t")):
        path = tmp_path / f"e{suffix}"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "name", "description"], delimiter=delimiter)
            writer.writeheader()
            writer.writerows(ENTITIES)
        kb = build_kb(path, None, tmp_path / f"out{suffix}", encoder=fake_encoder)
        assert kb.get_size_entities() == 3
        assert {c.entity_ for c in kb.get_alias_candidates("Paris")} == {"Q1"}


def test_spacy_train_with_config(tiny_bert, toy_kb_dir, tmp_path):
    from spacy.cli.train import train
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    DocBin(docs=[eg.reference for eg in make_examples(nlp)] * 3).to_disk(tmp_path / "train.spacy")
    config_path = Path(__file__).resolve().parents[1] / "project" / "configs" / "rsft_el.cfg"
    overrides = {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "train.spacy"),
        "paths.model": tiny_bert,
        "paths.kb": str(toy_kb_dir / "kb"),
        "training.max_steps": 8,
        "training.eval_frequency": 4,
    }
    train(config_path, tmp_path / "out", overrides=overrides)
    loaded = spacy.load(tmp_path / "out" / "model-last")
    assert loaded.get_pipe("rsft_entity_linker").kb.get_size_entities() == 3


def test_emerson_trains_to_100_percent(tiny_bert, data_dir, tmp_path):
    """The spaCy NEL tutorial data: three entities share the alias "Emerson"."""
    from spacy_rsft.cli.convert import convert
    from spacy.tokens import DocBin

    folder = data_dir / "spacy_nel_emerson"
    with (folder / "entities.csv").open(encoding="utf8") as file_:
        rows = list(csv.reader(file_))
    entities = [{"id": qid, "name": name, "description": desc} for qid, name, desc in rows]
    aliases = [{"alias": "Emerson", "entity": qid, "prob": 1 / 3} for qid, _, _ in rows]
    aliases += [{"alias": name, "entity": qid, "prob": 1.0} for qid, name, _ in rows]
    build_kb(write_jsonl(tmp_path / "e.jsonl", entities), write_jsonl(tmp_path / "a.jsonl", aliases), tmp_path / "kb", tiny_bert, progress=False)
    convert(folder / "emerson_annotated_text.jsonl", tmp_path / "train.spacy", "prodigy")
    fix_random_seed(0)
    nlp = spacy.blank("en")
    refs = list(DocBin().from_disk(tmp_path / "train.spacy").get_docs(nlp.vocab))
    examples = [Example(nlp.make_doc(d.text), d) for d in refs]
    el = nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}})
    el.initialize(lambda: examples, nlp=nlp, kb_loader=registry.misc.get("spacy.KBFromFile.v1")(str(tmp_path / "kb" / "kb")))
    optimizer = nlp.create_optimizer()
    optimizer.learn_rate = 0.005
    # 100% from the 20th update on (seed 0); 30 leave a margin.
    for _ in range(30):
        nlp.update([Example(nlp.make_doc(d.text), d) for d in refs], sgd=optimizer)
    assert nlp.evaluate(examples)["nel_inkb_accuracy"] == 1.0


def test_kb_vector_length_mismatch_is_a_clear_error(trained_el, tmp_path):
    nlp, *_ = trained_el
    el = nlp.get_pipe("rsft_entity_linker")
    from spacy.kb import InMemoryLookupKB

    other = InMemoryLookupKB(nlp.vocab, entity_vector_length=7)
    other.add_entity("Q1", 1, [0.0] * 7)
    with pytest.raises(ValueError, match=r"7-dimensional.*trained for 64"):
        el.set_kb(lambda vocab: other)
    nlp.to_disk(tmp_path / "el")
    other.to_disk(tmp_path / "el" / "rsft_entity_linker" / "kb")
    with pytest.raises(ValueError, match=r"7-dimensional"):
        spacy.load(tmp_path / "el")


def test_a_kb_swapped_in_brings_its_own_vectors(trained_el):
    """The linker converts each KB vector once and keeps the rows (EntityVectors); a KB set
    with set_kb must not be scored with the previous KB's cached rows."""
    from spacy.kb import InMemoryLookupKB

    nlp, *_ = trained_el
    el = nlp.get_pipe("rsft_entity_linker")
    old_kb = el.kb
    text, spans = TRAIN[0][0], [(0, 5, "LOC")]
    before = link(nlp, text, spans).ents[0]._.kb_candidates
    assert el._entity_vectors().kb is old_kb
    flipped = InMemoryLookupKB(nlp.vocab, entity_vector_length=old_kb.entity_vector_length)
    for entity in old_kb.get_entity_strings():
        flipped.add_entity(entity, 1, [-x for x in old_kb.get_vector(entity)])
    for alias in old_kb.get_alias_strings():
        cands = old_kb.get_alias_candidates(alias)
        flipped.add_alias(alias, [c.entity_ for c in cands], [c.prior_prob for c in cands])
    try:
        el.set_kb(lambda vocab: flipped)
        after = link(nlp, text, spans).ents[0]._.kb_candidates
        assert el._entity_vectors().kb is flipped
        assert after != before  # the negated vectors change the mention-entity products
    finally:
        el.set_kb(lambda vocab: old_kb)
    assert link(nlp, text, spans).ents[0]._.kb_candidates == before


def test_truncated_kb_is_a_clear_error(trained_el, tmp_path):
    nlp, *_ = trained_el
    nlp.to_disk(tmp_path / "el")
    contents = tmp_path / "el" / "rsft_entity_linker" / "kb" / "contents"
    contents.write_bytes(contents.read_bytes()[:50])
    with pytest.raises(ValueError, match=r"rsft_entity_linker.*knowledge base"):
        spacy.load(tmp_path / "el")


def test_doc_candidates_with_fallback(tmp_path):
    from spacy.kb import InMemoryLookupKB

    from spacy_rsft.kb.candidates import make_doc_candidate_generator

    nlp = spacy.blank("en")
    kb = InMemoryLookupKB(nlp.vocab, entity_vector_length=1)
    for entity in ("Phil_Simmons", "Gene_Simmons", "Paris"):
        kb.add_entity(entity, 1, [0.0])
    kb.add_alias("Simmons", ["Phil_Simmons", "Gene_Simmons"], [0.3, 0.7])
    kb.add_alias("Paris", ["Paris"], [1.0])
    write_jsonl(tmp_path / "c.jsonl", [{"doc": 947, "candidates": {"Simmons": ["Phil_Simmons", "Unknown"]}}])
    generate = make_doc_candidate_generator(str(tmp_path / "c.jsonl"))
    doc = nlp("Simmons took four wickets in Paris")
    doc.user_data["doc_id"] = "947testa CRICKET"
    found = generate(kb, doc[0:1])
    assert [(c.entity, c.prior) for c in found] == [("Phil_Simmons", pytest.approx(0.3))]
    # Mentions the document has no set for, and docs without an id, use the alias table.
    assert [c.entity for c in generate(kb, doc[5:6])] == ["Paris"]
    other = nlp("Simmons")
    assert [c.entity for c in generate(kb, other[0:1])] == ["Gene_Simmons", "Phil_Simmons"]
    # A re-tokenized copy of the document (no user data) is found by its text.
    from spacy_rsft.kb.candidates import doc_text_key

    write_jsonl(tmp_path / "t.jsonl", [{"doc": 1, "text_key": doc_text_key("Simmons  took four"), "candidates": {"Simmons": ["Phil_Simmons"]}}])
    by_text = make_doc_candidate_generator(str(tmp_path / "t.jsonl"))
    assert [c.entity for c in by_text(kb, nlp("Simmons took four")[0:1])] == ["Phil_Simmons"]


def test_doc_candidates_own_priors_replace_the_kbs_for_that_doc_only(tmp_path):
    """Cross-fitted priors: a training document's row carries p(e|m) without its own links."""
    from spacy.kb import InMemoryLookupKB

    from spacy_rsft.kb.candidates import make_doc_candidate_generator

    nlp = spacy.blank("en")
    kb = InMemoryLookupKB(nlp.vocab, entity_vector_length=1)
    for entity in ("Germany", "Germany_football"):
        kb.add_entity(entity, 1, [0.0])
    kb.add_alias("Germany", ["Germany", "Germany_football"], [0.4, 0.6])
    rows = [
        {"doc": 1, "candidates": {"Germany": ["Germany", "Germany_football"]},
         "priors": {"Germany": {"Germany": 0.9, "Germany_football": 0.1}}},
        {"doc": 2, "candidates": {"Germany": ["Germany", "Germany_football"]}},
    ]
    generate = make_doc_candidate_generator(str(write_jsonl(tmp_path / "c.jsonl", rows)))
    found = {}
    for number in (1, 2):
        doc = nlp("Germany won")
        doc.user_data["doc_id"] = f"{number} SOCCER"
        found[number] = [(c.entity, c.prior) for c in generate(kb, doc[0:1])]
    assert found[1] == [("Germany", pytest.approx(0.9)), ("Germany_football", pytest.approx(0.1))]
    assert found[2] == [("Germany_football", pytest.approx(0.6)), ("Germany", pytest.approx(0.4))]


@pytest.mark.parametrize("doc_context", [False, True])
def test_doc_context_adds_the_documents_mean(tiny_bert, toy_kb_dir, doc_context):
    """With doc_context, a mention's input is [mention, window, document] means, and the
    gradient reaches tokens outside its window; without, it does not."""
    nlp = make_el_nlp(tiny_bert, toy_kb_dir, model={"tok2vec": {"name": tiny_bert}, "context_window": 1, "doc_context": doc_context})
    model = nlp.get_pipe("rsft_entity_linker").model
    tok2vec, projection = model.get_ref("tok2vec"), model.get_ref("projection")
    doc = nlp.make_doc("Paris won the football match in the final minute")
    vecs = tok2vec.predict([doc])[0]
    width = vecs.shape[1]
    assert projection.get_dim("nI") == (3 if doc_context else 2) * width
    blocks = [vecs[0:1].mean(axis=0), vecs[0:2].mean(axis=0)] + ([vecs.mean(axis=0)] if doc_context else [])
    expected = projection.predict(model.ops.xp.concatenate(blocks)[None, :])
    output, backprop = model(([doc], [[(0, 1)]]), is_train=False)
    numpy.testing.assert_allclose(model.ops.to_numpy(output), model.ops.to_numpy(expected), rtol=1e-4, atol=1e-5)
    # Which tokens the gradient reaches: record it at the token vectors.
    seen = {}
    original = tok2vec._func

    def recording(layer, X, is_train):
        Y, back = original(layer, X, is_train)

        def backprop_recording(dY):
            seen["d"] = [model.ops.to_numpy(d).copy() for d in dY]
            return back(dY)

        return Y, backprop_recording

    tok2vec._func = recording
    try:
        _, backprop = model(([doc], [[(0, 1)]]), is_train=True)
        backprop(model.ops.alloc2f(*output.shape) + 1.0)
    finally:
        tok2vec._func = original
    far = seen["d"][0][2:]
    assert (numpy.abs(far).sum() > 0) == doc_context
    if doc_context:
        # Every token outside the window gets the document block's gradient / n_tokens:
        # d_features = d_output @ W, and one mention here.
        W = model.ops.to_numpy(projection.get_param("W"))
        d_features = numpy.ones((1, W.shape[0]), dtype="float32") @ W
        expected = d_features[0, 2 * width :] / len(doc)
        numpy.testing.assert_allclose(far, numpy.broadcast_to(expected, far.shape), rtol=1e-4, atol=1e-6)
