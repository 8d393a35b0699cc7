"""rsft_entity_linker's ranking features: mention expansion, popularity, entity types,
document coherence."""
import json
import warnings
from pathlib import Path

import pytest
import spacy
from spacy.kb import InMemoryLookupKB
from spacy.training import Example
from spacy.util import registry
from thinc.api import fix_random_seed

from spacy_rsft.kb.builder import build_kb
from spacy_rsft.kb.candidates import CandidateGenerator, expansion_of
from spacy_rsft.pipeline.link_features import EntityTable

registry.ensure_populated()


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    return path


def simmons_kb(vocab) -> InMemoryLookupKB:
    kb = InMemoryLookupKB(vocab, entity_vector_length=1)
    for entity, freq in (("Phil_Simmons", 10), ("Gene_Simmons", 1000), ("Simmons_Bedding", 5)):
        kb.add_entity(entity, freq, [0.0])
    kb.add_alias("Simmons", ["Gene_Simmons", "Phil_Simmons", "Simmons_Bedding"], [0.6, 0.3, 0.1])
    kb.add_alias("Phil Simmons", ["Phil_Simmons"], [1.0])
    return kb


def doc_with_ents(nlp, words, ents):
    doc = spacy.tokens.Doc(nlp.vocab, words=words)
    doc.ents = [spacy.tokens.Span(doc, s, e, label=l) for s, e, l in ents]
    return doc


# -- mention expansion ------------------------------------------------------------------
def test_short_mention_takes_the_longer_mentions_candidates():
    nlp = spacy.blank("en")
    kb = simmons_kb(nlp.vocab)
    doc = doc_with_ents(nlp, ["Phil", "Simmons", "bowled", ".", "Simmons", "took", "four"], [(0, 2, "PER"), (4, 5, "PER")])
    generate = CandidateGenerator()
    found = generate.for_doc(kb, list(doc.ents))
    assert [c.entity for c in found[0]] == ["Phil_Simmons"]
    assert [c.entity for c in found[1]] == ["Phil_Simmons"]
    # A Span alone expands against doc.ents, as spaCy's candidate generators are called.
    assert [c.entity for c in generate(kb, doc.ents[1])] == ["Phil_Simmons"]
    # Off: the short mention's own alias ranks Gene Simmons first.
    plain = CandidateGenerator(expand_mentions=False)
    assert [c.entity for c in plain.for_doc(kb, list(doc.ents))[1]][0] == "Gene_Simmons"


def test_expansion_needs_whole_words_and_a_compatible_label():
    nlp = spacy.blank("en")
    doc = doc_with_ents(nlp, ["Phil", "Simmons", "and", "Simmons", "Bedding", "Co", "and", "Simmons", "and", "Sim"],
                        [(0, 2, "PER"), (3, 6, "ORG"), (7, 8, "PER"), (9, 10, "PER")])
    ents = list(doc.ents)
    assert expansion_of(ents[2], ents).text == "Phil Simmons"  # the ORG is longer, but not a PER
    assert expansion_of(ents[3], ents) is None  # "Sim" is not a whole word of "Simmons"
    # Mentions without a label (spans a user passes in) expand to any label.
    other = spacy.tokens.Doc(nlp.vocab, words=["Simmons", "Bedding", "Co", "and", "Simmons"])
    mentions = [other[0:3], other[4:5]]
    assert expansion_of(mentions[1], mentions).text == "Simmons Bedding Co"


def test_expansion_keeps_own_candidates_when_the_longer_mention_has_none():
    nlp = spacy.blank("en")
    kb = simmons_kb(nlp.vocab)
    doc = doc_with_ents(nlp, ["Joe", "Simmons", "and", "Simmons"], [(0, 2, "PER"), (3, 4, "PER")])
    found = CandidateGenerator().for_doc(kb, list(doc.ents))
    assert found[0] == []
    assert [c.entity for c in found[1]][0] == "Gene_Simmons"


# -- popularity -------------------------------------------------------------------------
def test_entity_table_from_kb_and_file(tmp_path):
    nlp = spacy.blank("en")
    kb = simmons_kb(nlp.vocab)
    table = EntityTable.from_kb(kb)
    assert table.popularity("Gene_Simmons") == pytest.approx(1.0)
    assert 0.0 < table.popularity("Phil_Simmons") < table.popularity("Gene_Simmons")
    assert table.popularity("unknown") == 0.0
    assert table.type_names == [""]
    path = write_jsonl(tmp_path / "e.jsonl", [
        {"id": "Phil_Simmons", "frequency": 10, "type": "PER"},
        {"id": "Simmons_Bedding", "frequency": 5, "type": "ORG"},
        {"id": "Not_in_kb", "frequency": 10 ** 6, "type": "LOC"},
    ])
    table = EntityTable.from_file(path, kb)
    assert table.type_names == ["", "ORG", "PER"]  # entities outside the KB are left out
    assert table.type_index("Phil_Simmons") == 2 and table.type_index("Gene_Simmons") == 0
    assert table.popularity("Phil_Simmons") == pytest.approx(1.0)


# -- the component with a toy KB where a feature decides ----------------------------------
TYPE_ENTITIES = [
    {"id": "W_person", "name": "George Washington", "type": "PER", "frequency": 50},
    {"id": "W_state", "name": "Washington state", "type": "GPE", "frequency": 50},
]
TYPE_ALIASES = [
    {"alias": "Washington", "entity": "W_person", "count": 1},
    {"alias": "Washington", "entity": "W_state", "count": 1},
]
# The same words, so the mention encoder sees no difference: only the NER label tells.
TYPE_TRAIN = [("Washington .", "PER", "W_person"), ("Washington .", "LOC", "W_state")]


@pytest.fixture(scope="module")
def type_kb_dir(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("type_kb")
    build_kb(write_jsonl(tmp / "e.jsonl", TYPE_ENTITIES), write_jsonl(tmp / "a.jsonl", TYPE_ALIASES), tmp / "out", tiny_bert, progress=False)
    return tmp / "out"


def examples_of(rows):
    """A get-examples function over (text, label, kb_id) rows, each twice; the mention is the
    first 10 characters ("Washington")."""
    def make(nlp):
        out = []
        for text, label, kb_id in rows * 2:
            ref = nlp.make_doc(text)
            ref.ents = [ref.char_span(0, 10, label=label, kb_id=kb_id)]
            out.append(Example(nlp.make_doc(text), ref))
        return out
    return make


type_examples = examples_of(TYPE_TRAIN)


def train_type_linker(tiny_bert, kb_dir, features, steps=30, make_examples=type_examples, learn_rate=0.05):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    el = nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}, "features": features})
    loader = registry.misc.get("spacy.KBFromFile.v1")(str(kb_dir / "kb"))
    entities = kb_dir / "entities.jsonl" if {"type", "context_type"} & set(features) else None
    el.initialize(lambda: make_examples(nlp), nlp=nlp, kb_loader=loader, entities=entities)
    optimizer = nlp.create_optimizer()
    optimizer.learn_rate = learn_rate
    for _ in range(steps):
        nlp.update(make_examples(nlp), sgd=optimizer, drop=0.0)
    return nlp


def link_one(nlp, label, text="Washington ."):
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(0, 10, label=label)]
    return nlp.get_pipe("rsft_entity_linker")(doc).ents[0].kb_id_


def test_type_feature_learns_label_type_compatibility(tiny_bert, type_kb_dir, tmp_path):
    nlp = train_type_linker(tiny_bert, type_kb_dir, ["log_prior", "match", "type"])
    assert (link_one(nlp, "PER"), link_one(nlp, "LOC")) == ("W_person", "W_state")
    el = nlp.get_pipe("rsft_entity_linker")
    assert el.cfg["mention_labels"] == ["", "LOC", "PER"] and el.cfg["entity_types"] == ["", "GPE", "PER"]
    # Saved and loaded: the table of types and the learned T come back.
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert (link_one(loaded, "PER"), link_one(loaded, "LOC")) == ("W_person", "W_state")
    assert loaded.get_pipe("rsft_entity_linker").features == ["log_prior", "match", "type"]


def test_without_the_type_feature_the_label_cannot_decide(tiny_bert, type_kb_dir):
    nlp = train_type_linker(tiny_bert, type_kb_dir, ["log_prior", "match"], steps=10)
    assert link_one(nlp, "PER") == link_one(nlp, "LOC")


# -- the type the context asks for ---------------------------------------------------------
# One name, so the two entities have the same vector, the same prior and the same label
# (LOC, as CoNLL tags a national team): only the words around the mention tell the team
# (an ORG) from the place (a GPE), and only through the type of the entity.
CONTEXT_ENTITIES = [
    {"id": "W_team", "name": "Washington", "type": "ORG", "frequency": 50},
    {"id": "W_state", "name": "Washington", "type": "GPE", "frequency": 50},
]
CONTEXT_ALIASES = [{"alias": "Washington", "entity": e["id"], "count": 1} for e in CONTEXT_ENTITIES]
CONTEXT_TRAIN = [("Washington won the match 3 - 1 .", "LOC", "W_team"),
                 ("Washington has heavy rain today .", "LOC", "W_state")]
CONTEXT_TEXTS = [text for text, _, _ in CONTEXT_TRAIN]


@pytest.fixture(scope="module")
def context_kb_dir(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("context_kb")
    build_kb(write_jsonl(tmp / "e.jsonl", CONTEXT_ENTITIES), write_jsonl(tmp / "a.jsonl", CONTEXT_ALIASES), tmp / "out",
             tiny_bert, progress=False)
    return tmp / "out"


context_examples = examples_of(CONTEXT_TRAIN)


def test_context_type_learns_the_type_the_words_ask_for(tiny_bert, context_kb_dir, tmp_path):
    # The transformer must learn to tell the contexts apart: a learning rate it survives.
    nlp = train_type_linker(tiny_bert, context_kb_dir, ["log_prior", "match", "context_type"], steps=20,
                            make_examples=context_examples, learn_rate=0.005)
    assert [link_one(nlp, "LOC", t) for t in CONTEXT_TEXTS] == ["W_team", "W_state"]
    el = nlp.get_pipe("rsft_entity_linker")
    # entity vector, NIL logit, one score per type ("", GPE, ORG)
    assert el.model.get_dim("nO") == el.cfg["entity_vector_length"] + 1 + 3
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert [link_one(loaded, "LOC", t) for t in CONTEXT_TEXTS] == ["W_team", "W_state"]
    assert loaded.get_pipe("rsft_entity_linker").features == ["log_prior", "match", "context_type"]


@pytest.mark.parametrize("features", [["log_prior", "match"], ["log_prior", "match", "type"]])
def test_without_context_type_the_words_cannot_decide(tiny_bert, context_kb_dir, features):
    # Same vector, prior and label: the label x type table has nothing to go on either.
    nlp = train_type_linker(tiny_bert, context_kb_dir, features, steps=20, make_examples=context_examples,
                            learn_rate=0.005)
    assert len({link_one(nlp, "LOC", t) for t in CONTEXT_TEXTS}) == 1


def test_type_feature_without_types_warns(tiny_bert, type_kb_dir):
    nlp = spacy.blank("en")
    el = nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}, "features": ["log_prior", "type"]})
    loader = registry.misc.get("spacy.KBFromFile.v1")(str(type_kb_dir / "kb"))
    with pytest.warns(UserWarning, match="W009"):
        el.initialize(lambda: type_examples(nlp), nlp=nlp, kb_loader=loader)
    el = spacy.blank("en").add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}},
                                                                  "features": ["log_prior", "context_type"]})
    with pytest.warns(UserWarning, match=r"W009.*context_type"):
        el.initialize(lambda: type_examples(nlp), nlp=nlp, kb_loader=loader)


def test_bad_features_and_entities_file_are_clear_errors(tiny_bert, type_kb_dir, tmp_path):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=r"E008.*features"):
        nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}, "features": ["prior"]})
    el = nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}, "features": ["log_prior", "type"]})
    loader = registry.misc.get("spacy.KBFromFile.v1")(str(type_kb_dir / "kb"))
    with pytest.raises(ValueError, match=r"E207.*rsft_entity_linker.*missing.jsonl"):
        el.initialize(lambda: type_examples(nlp), nlp=nlp, kb_loader=loader, entities=tmp_path / "missing.jsonl")


# -- coherence --------------------------------------------------------------------------
def basketball_kb(vocab) -> InMemoryLookupKB:
    """Jordan is the country by prior; the other mentions' entities point at basketball."""
    kb = InMemoryLookupKB(vocab, entity_vector_length=2)
    vectors = {"Jordan_country": [1.0, 0.0], "Michael_Jordan": [0.0, 1.0],
               "Scottie_Pippen": [0.1, 1.0], "Chicago_Bulls": [0.0, 1.0]}
    for entity, vector in vectors.items():
        kb.add_entity(entity, 1, vector)
    kb.add_alias("Jordan", ["Jordan_country", "Michael_Jordan"], [0.7, 0.3])
    kb.add_alias("Pippen", ["Scottie_Pippen"], [1.0])
    kb.add_alias("Bulls", ["Chicago_Bulls"], [1.0])
    return kb


def coherence_linker(tiny_bert, weight):
    nlp = spacy.blank("en")
    el = nlp.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}})
    el.set_kb(basketball_kb)
    el.initialize(lambda: [Example(nlp.make_doc("x"), nlp.make_doc("x"))], nlp=nlp)
    # The mention vectors say nothing (zero projection): the prior and coherence decide.
    projection = el.model.get_ref("projection")
    projection.set_param("W", projection.get_param("W") * 0)
    W = el.model.get_ref("feature_weights").get_param("W")
    W[el.cfg["features"].index("coherence")] = weight / el.cfg["feature_scale"]
    return nlp


def test_coherence_changes_a_link_where_it_should(tiny_bert):
    words = ["Jordan", "passed", "to", "Pippen", "for", "the", "Bulls"]
    ents = [(0, 1, "PER"), (3, 4, "PER"), (6, 7, "ORG")]
    without = coherence_linker(tiny_bert, 0.0)
    assert without.get_pipe("rsft_entity_linker")(doc_with_ents(without, words, ents)).ents[0].kb_id_ == "Jordan_country"
    with_ = coherence_linker(tiny_bert, 3.0)
    doc = with_.get_pipe("rsft_entity_linker")(doc_with_ents(with_, words, ents))
    assert [e.kb_id_ for e in doc.ents] == ["Michael_Jordan", "Scottie_Pippen", "Chicago_Bulls"]
    # Alone, the same mention has no context: the prior wins.
    alone = with_.get_pipe("rsft_entity_linker")(doc_with_ents(with_, ["Jordan", "won"], [(0, 1, "PER")]))
    assert alone.ents[0].kb_id_ == "Jordan_country"


def test_coherence_weight_gets_the_gradient_that_helps(tiny_bert):
    nlp = coherence_linker(tiny_bert, 0.0)
    el = nlp.get_pipe("rsft_entity_linker")
    words = ["Jordan", "passed", "to", "Pippen", "for", "the", "Bulls"]
    ref = doc_with_ents(nlp, words, [])
    ref.ents = [spacy.tokens.Span(ref, 0, 1, label="PER", kb_id="Michael_Jordan"),
                spacy.tokens.Span(ref, 3, 4, label="PER", kb_id="Scottie_Pippen"),
                spacy.tokens.Span(ref, 6, 7, label="ORG", kb_id="Chicago_Bulls")]
    eg = Example(spacy.tokens.Doc(nlp.vocab, words=words), ref)
    mentions = el._gold_mentions(eg)
    outputs = el.model.ops.to_numpy(el.model.predict(([eg.predicted], [[(m.start, m.end) for m in mentions]])))
    _, _, d_weights, *_ = el._loss([(eg, mentions)], outputs)
    # A positive coherence weight lowers the loss: its gradient is negative.
    assert d_weights[el.cfg["features"].index("coherence")] < 0


def test_pipeline_saved_before_features_loads_with_the_old_two(tiny_bert, type_kb_dir, tmp_path):
    nlp = train_type_linker(tiny_bert, type_kb_dir, ["log_prior", "match"], steps=1)
    nlp.to_disk(tmp_path / "p")
    cfg_path = tmp_path / "p" / "rsft_entity_linker" / "cfg"
    cfg = json.loads(cfg_path.read_text())
    for key in ("features", "mention_labels", "entity_types"):
        cfg.pop(key)
    cfg_path.write_text(json.dumps(cfg))
    (tmp_path / "p" / "rsft_entity_linker" / "entity_table").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = spacy.load(tmp_path / "p")
    assert loaded.get_pipe("rsft_entity_linker").features == ["log_prior", "match"]
    assert link_one(loaded, "PER") == link_one(nlp, "PER")


def test_to_bytes_round_trip_keeps_features_and_links(tiny_bert, type_kb_dir):
    nlp = train_type_linker(tiny_bert, type_kb_dir, ["log_prior", "match", "popularity", "coherence", "type"], steps=15)
    el = nlp.get_pipe("rsft_entity_linker")
    copy = spacy.blank("en")
    other = copy.add_pipe("rsft_entity_linker", config={"model": {"tok2vec": {"name": tiny_bert}}, "features": ["log_prior"]})
    other.from_bytes(el.to_bytes())
    other.set_kb(lambda vocab: el.kb)
    assert other.features == el.features and other.entity_table.types == el.entity_table.types
    for label in ("PER", "LOC"):
        assert link_one(copy, label) == link_one(nlp, label)


def test_entity_vectors_are_the_kbs_rows_each_converted_once():
    from spacy_rsft.pipeline.link_features import EntityVectors

    nlp = spacy.blank("en")
    kb = InMemoryLookupKB(nlp.vocab, entity_vector_length=3)
    kb.add_entity("A", 1, [1.0, 2.0, 3.0])
    kb.add_entity("B", 1, [4.0, 5.0, 6.0])
    calls = []

    class CountingKB:  # the Cython KB's methods cannot be patched
        def get_vector(self, entity):
            calls.append(entity)
            return kb.get_vector(entity)

    vectors = EntityVectors(CountingKB(), 3)
    matrix = vectors.of(["B", "A", "B"])
    assert matrix.dtype == "float32" and matrix.tolist() == [[4, 5, 6], [1, 2, 3], [4, 5, 6]]
    assert vectors.of(["A", "B"]).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert sorted(calls) == ["A", "B"]  # each entity read from the KB once
    assert vectors.of([]).shape == (0, 3)

