"""Convert the formats users have into spaCy DocBin files.

- conll: CoNLL-2003 (4 columns), 2-column and other IOB/BIO TSV files (the last column is
  the tag), through spaCy's own `conll_ner_to_docs` converter (`n_sents` sentences a doc),
  the same as `spacy convert -c ner -n 10`.

- jsonl: {"text", "entities": [{"start", "end", "label", "kb_id"?}]} (the demo format)
- prodigy: Prodigy NER/EL tasks {"text", "spans": [{"start", "end", "label", "kb_id"?}],
  "accept": [kb_id]?, "answer"} (e.g. the spaCy Emerson tutorial data); rejected and
  ignored answers are skipped.
- aida: AIDA CoNLL-YAGO JSONL {"tokens", "sentences", "mentions": [{"start", "end",
  "ner", "wiki_title"}]}; NIL mentions (wiki_title null) get kb_id "NIL".
"""
import json
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.util import filter_spans

from ..annotations import NIL
from ..errors import Errors, Warnings
from ..io import atomic_output


def _read_jsonl(path: Path) -> Iterator[Tuple[int, Dict]]:
    with path.open(encoding="utf8") as file_:
        for line_no, line in enumerate(file_, start=1):
            if line.strip():
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(Errors.E401.format(path=path, line=line_no, err=err.msg)) from None


def _char_spans(doc: Doc, spans: List[Dict], path: Path, line_no: int) -> List[Span]:
    result = []
    for ent in spans:
        span = doc.char_span(
            ent["start"], ent["end"], label=ent["label"], kb_id=ent.get("kb_id") or "",
            alignment_mode="expand",
        )
        if span is None:
            raise ValueError(Errors.E402.format(path=path, line=line_no, entity=ent))
        result.append(span)
    return result


def _set_ents(doc: Doc, ents: List[Span], where: str) -> Doc:
    # doc.ents cannot overlap: keep the longest of overlapping spans, and say so.
    kept = filter_spans(ents)
    if len(kept) < len(ents):
        dropped = sorted(set((e.start_char, e.end_char, e.label_) for e in ents) - set((e.start_char, e.end_char, e.label_) for e in kept))
        warnings.warn(Warnings.W007.format(where=where, count=len(dropped), dropped=dropped[:3]))
    doc.ents = kept
    return doc


def jsonl_docs(nlp, path: Path, prodigy: bool = False) -> Iterator[Doc]:
    for line_no, task in _read_jsonl(path):
        if prodigy and task.get("answer", "accept") != "accept":
            continue
        doc = nlp.make_doc(task["text"])
        spans = task.get("spans" if prodigy else "entities", [])
        if prodigy and task.get("accept") and len(spans) == 1:
            spans = [dict(spans[0], kb_id=task["accept"][0])]
        yield _set_ents(doc, _char_spans(doc, spans, path, line_no), f"{path}:{line_no}")


def aida_docs(nlp, path: Path) -> Iterator[Doc]:
    for _, task in _read_jsonl(path):
        words = task["tokens"]
        sent_starts = [False] * len(words)
        for start, _ in task.get("sentences", []):
            if start < len(words):
                sent_starts[start] = True
        doc = Doc(nlp.vocab, words=words, sent_starts=sent_starts or None)
        ents = [
            Span(doc, m["start"], m["end"], label=m["ner"], kb_id=m.get("wiki_title") or NIL)
            for m in task["mentions"]
        ]
        doc = _set_ents(doc, ents, f"{path} doc {task.get('doc_id')}")
        doc.user_data["doc_id"] = task.get("doc_id")
        yield doc


def conll_docs(path: Path, n_sents: int) -> Iterator[Doc]:
    from spacy.training.converters import conll_ner_to_docs

    yield from conll_ner_to_docs(path.read_text(encoding="utf8"), n_sents=n_sents, no_print=True)


def convert(input_path: Path, output_path: Path, fmt: str, lang: str = "en",
            limit: Optional[int] = None, n_sents: int = 10) -> int:
    """Convert a file to a .spacy DocBin, written atomically.

    input_path (Path): The input file.
    output_path (Path): The .spacy file to write.
    fmt (str): "conll", "jsonl", "prodigy" or "aida".
    lang (str): Language of the tokenizer.
    limit (Optional[int]): Keep only the first `limit` docs.
    n_sents (int): Sentences per doc for "conll".
    RETURNS (int): The number of docs written.
    """
    if not input_path.exists():
        raise ValueError(Errors.E403.format(path=input_path))
    nlp = spacy.blank(lang)
    readers = {
        "conll": lambda: conll_docs(input_path, n_sents),
        "jsonl": lambda: jsonl_docs(nlp, input_path),
        "prodigy": lambda: jsonl_docs(nlp, input_path, prodigy=True),
        "aida": lambda: aida_docs(nlp, input_path),
    }
    if fmt not in readers:
        raise ValueError(Errors.E404.format(fmt=fmt, formats=sorted(readers)))
    docbin = DocBin(store_user_data=True)
    for i, doc in enumerate(readers[fmt]()):
        if limit is not None and i >= limit:
            break
        docbin.add(doc)
    with atomic_output(output_path) as tmp:
        docbin.to_disk(tmp)
    return len(docbin)
