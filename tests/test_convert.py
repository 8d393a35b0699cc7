"""Converters: CoNLL/IOB through spaCy's own converter, JSONL formats with KB ids."""
import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_rsft.cli.convert import convert


def read(path):
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def test_conll_four_and_two_columns(tmp_path):
    # Invented sentences in the CoNLL-2003 layout (document marker included).
    four = (Path(__file__).parent / "fixtures" / "conll_four_columns.txt").read_text()
    two = "Famil\tO\nadenomatous\tB-Disease\npolyposis\tI-Disease\n.\tO\n\nIt\tO\nworks\tO\n"
    (tmp_path / "a.txt").write_text(four)
    (tmp_path / "b.tsv").write_text(two)
    assert convert(tmp_path / "a.txt", tmp_path / "a.spacy", "conll") == 1
    assert convert(tmp_path / "b.tsv", tmp_path / "b.spacy", "conll") == 1
    ents = [(e.text, e.label_) for d in read(tmp_path / "a.spacy") for e in d.ents]
    assert ents == [("Acme", "ORG"), ("Danish", "MISC"), ("Lena Holt", "PER")]
    assert [(e.text, e.label_) for e in read(tmp_path / "b.spacy")[0].ents] == [("adenomatous polyposis", "Disease")]


def test_prodigy_and_aida(tmp_path):
    prodigy = {"text": "Emerson won.", "spans": [{"start": 0, "end": 7, "label": "PERSON"}], "accept": ["Q312545"], "answer": "accept"}
    rejected = dict(prodigy, answer="reject")
    (tmp_path / "p.jsonl").write_text(json.dumps(prodigy) + "\n" + json.dumps(rejected) + "\n")
    assert convert(tmp_path / "p.jsonl", tmp_path / "p.spacy", "prodigy") == 1
    assert [(e.text, e.kb_id_) for e in read(tmp_path / "p.spacy")[0].ents] == [("Emerson", "Q312545")]
    aida = {"doc_id": "947testa X", "tokens": ["Phil", "Simmons", "took", "Jorvik"], "sentences": [[0, 4]],
            "mentions": [{"start": 0, "end": 2, "ner": "PER", "wiki_title": "Phil Simmons"},
                         {"start": 3, "end": 4, "ner": "LOC", "wiki_title": None}]}
    (tmp_path / "a.jsonl").write_text(json.dumps(aida) + "\n")
    assert convert(tmp_path / "a.jsonl", tmp_path / "a.spacy", "aida") == 1
    doc = read(tmp_path / "a.spacy")[0]
    assert [(e.text, e.kb_id_) for e in doc.ents] == [("Phil Simmons", "Phil Simmons"), ("Jorvik", "NIL")]
    assert doc.user_data["doc_id"] == "947testa X"


def test_overlapping_entities_are_reported(tmp_path):
    row = {"text": "New York City", "entities": [{"start": 0, "end": 8, "label": "LOC"}, {"start": 0, "end": 13, "label": "LOC"}]}
    (tmp_path / "o.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.warns(UserWarning, match="dropped 1 overlapping"):
        convert(tmp_path / "o.jsonl", tmp_path / "o.spacy", "jsonl")
    assert [e.text for e in read(tmp_path / "o.spacy")[0].ents] == ["New York City"]


def test_bad_input_names_the_file_and_line(tmp_path):
    good = {"text": "New York", "entities": [{"start": 0, "end": 8, "label": "LOC"}]}
    off_text = dict(good, entities=[{"start": 0, "end": 20, "label": "LOC"}])
    # Line numbers count blank lines too, as an editor does.
    (tmp_path / "json.jsonl").write_text(json.dumps(good) + "\n\n{not json\n")
    (tmp_path / "span.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(off_text) + "\n")
    with pytest.raises(ValueError, match=r"E401.*json\.jsonl:3"):
        convert(tmp_path / "json.jsonl", tmp_path / "out.spacy", "jsonl")
    with pytest.raises(ValueError, match=r"E402.*span\.jsonl:2.*offsets"):
        convert(tmp_path / "span.jsonl", tmp_path / "out.spacy", "jsonl")
    with pytest.raises(ValueError, match=r"E404.*'conll', 'jsonl'"):
        convert(tmp_path / "span.jsonl", tmp_path / "out.spacy", "csv")
    with pytest.raises(ValueError, match=r"E403.*missing\.jsonl"):
        convert(tmp_path / "missing.jsonl", tmp_path / "out.spacy", "jsonl")
    assert not (tmp_path / "out.spacy").exists()
