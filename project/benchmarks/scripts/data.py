"""Derived training sets for the benchmark, each written atomically with a JSON report of
what was changed (fixed seeds, so every run of the benchmark sees the same data).

usage:
  python scripts/data.py derive DIR
      from DIR/conll/train.spacy: train_noisy (noise 0.3, seed 0), train_rare_misc (MISC,
      keep 0.1, seed 0), train_sents and train_noisy_sents, each with its report beside it
      (train_noisy.json, ...)
  python scripts/data.py tenth FULL_DIR TENTH_DIR
      every tenth document of FULL_DIR's conll/{train,valid}.spacy and aida/{train,testa}.spacy
  python scripts/data.py noisebench NOISEBENCH_DIR OUT_DIR
      every *.train.txt and clean.dev.txt of NoiseBench (one doc per article, its sentences
      marked) to OUT_DIR/NAME.spacy, and for each noisy set the oracle: the noisy docs with
      every sentence whose labels differ from the clean ones masked out (labels missing),
      as a perfect sentence filter would leave them (OUT_DIR/NAME.oracle.spacy), with a
      report of how many sentences and entities differ (OUT_DIR/NAME.json)
  python scripts/bench_data.py subset IN.spacy OUT.spacy --fraction 0.1
      every 1/fraction-th document (a spread-out sample, not the first ones)
  python scripts/bench_data.py noise IN.spacy OUT.spacy --rate 0.3 --seed 0 --report R.json
      corrupt that share of the gold entities: a third each type swaps, boundary shifts
      (one token more or less on one side, inside the sentence, never overlapping another
      entity) and deletions
  python scripts/bench_data.py imbalance IN.spacy OUT.spacy --label MISC --keep 0.1 --seed 0 --report R.json
      keep only that share of the sentences with a LABEL entity (the others are dropped
      from their documents; documents left empty are dropped)
  python scripts/bench_data.py sentences IN.spacy OUT.spacy
      one document per sentence, in order (the same sentences line up across a clean and
      a noisy file, so their entities can be compared sentence by sentence)
"""
import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import spacy
from spacy.tokens import Doc, DocBin, Span

from spacy_rsft.io import atomic_output

CORRUPTIONS = ("type_swap", "boundary_shift", "deletion")


def read_docs(path: Path) -> Tuple[spacy.Language, List[Doc]]:
    nlp = spacy.blank("en")
    return nlp, list(DocBin().from_disk(path).get_docs(nlp.vocab))


def write_docs(docs: List[Doc], path: Path) -> None:
    with atomic_output(path) as tmp:
        DocBin(docs=docs, store_user_data=True).to_disk(tmp)


def write_report(report: Dict, path: Optional[Path]) -> None:
    print(json.dumps(report))
    if path is not None:
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(report, indent=2), encoding="utf8")


def subset(docs: List[Doc], fraction: float) -> List[Doc]:
    step = max(1, round(1 / fraction))
    return docs[::step]


def sentences(doc: Doc) -> List[Span]:
    """The doc's sentences, or the whole doc when it has no sentence boundaries."""
    return list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]


def shifted(ent: Span, rng: random.Random, taken: List[bool]) -> Optional[Tuple[int, int]]:
    """A boundary one token off on one side, or None when no shift is possible."""
    doc = ent.doc
    sent = ent.sent if doc.has_annotation("SENT_START") else doc[:]
    options = []
    if ent.start > sent.start and not taken[ent.start - 1]:
        options.append((ent.start - 1, ent.end))  # grow left
    if ent.end < sent.end and not taken[ent.end]:
        options.append((ent.start, ent.end + 1))  # grow right
    if len(ent) > 1:
        options += [(ent.start + 1, ent.end), (ent.start, ent.end - 1)]  # shrink
    return rng.choice(options) if options else None


def corrupt_doc(doc: Doc, labels: List[str], rate: float, rng: random.Random, counts: Counter) -> Doc:
    taken = [False] * len(doc)
    for ent in doc.ents:
        for i in range(ent.start, ent.end):
            taken[i] = True
    new_ents = []
    for ent in doc.ents:
        counts["entities"] += 1
        if rng.random() >= rate:
            new_ents.append(ent)
            continue
        kind = rng.choice(CORRUPTIONS)
        if kind == "type_swap":
            label = rng.choice([label for label in labels if label != ent.label_])
            new_ents.append(Span(doc, ent.start, ent.end, label=label))
        elif kind == "boundary_shift":
            bounds = shifted(ent, rng, taken)
            if bounds is None:  # a one-token entity alone in its sentence: delete instead
                kind = "deletion"
            else:
                for i in range(ent.start, ent.end):
                    taken[i] = False
                for i in range(*bounds):
                    taken[i] = True
                new_ents.append(Span(doc, bounds[0], bounds[1], label=ent.label_))
        if kind == "deletion":
            for i in range(ent.start, ent.end):
                taken[i] = False
        counts[kind] += 1
    new_doc = Doc(
        doc.vocab,
        words=[t.text for t in doc],
        spaces=[bool(t.whitespace_) for t in doc],
        sent_starts=[bool(t.is_sent_start) for t in doc] if doc.has_annotation("SENT_START") else None,
    )
    new_doc.ents = [Span(new_doc, e.start, e.end, label=e.label_) for e in new_ents]
    return new_doc


def noise(docs: List[Doc], rate: float, seed: int) -> Tuple[List[Doc], Dict]:
    rng = random.Random(seed)
    labels = sorted({ent.label_ for doc in docs for ent in doc.ents})
    counts: Counter = Counter()
    out = [corrupt_doc(doc, labels, rate, rng, counts) for doc in docs]
    corrupted = sum(counts[kind] for kind in CORRUPTIONS)
    report = {"rate": rate, "seed": seed, "entities": counts["entities"], "corrupted": corrupted}
    report.update({kind: counts[kind] for kind in CORRUPTIONS})
    report["corrupted_share"] = round(corrupted / max(1, counts["entities"]), 4)
    return out, report


def imbalance(docs: List[Doc], label: str, keep: float, seed: int) -> Tuple[List[Doc], Dict]:
    rng = random.Random(seed)
    out = []
    before: Counter = Counter()
    after: Counter = Counter()
    for doc in docs:
        kept = []
        for sent in sentences(doc):
            sent_labels = [ent.label_ for ent in sent.ents]
            before.update(sent_labels)
            if label in sent_labels and rng.random() >= keep:
                continue
            after.update(sent_labels)
            kept.append(sent)
        if kept:
            out.append(Doc.from_docs([sent.as_doc() for sent in kept], ensure_whitespace=True))
    report = {
        "label": label,
        "keep": keep,
        "seed": seed,
        "docs_before": len(docs),
        "docs_after": len(out),
        "entities_before": dict(sorted(before.items())),
        "entities_after": dict(sorted(after.items())),
    }
    return out, report


def split_sentences(docs: List[Doc]) -> Tuple[List[Doc], Dict]:
    out = [sent.as_doc() for doc in docs for sent in sentences(doc)]
    return out, {"docs_before": len(docs), "sentences": len(out)}


def derive(folder: Path) -> None:
    """The noise, imbalance and sentence-level sets of one corpus folder."""
    conll = folder / "conll"
    _, docs = read_docs(conll / "train.spacy")
    noisy, report = noise(docs, rate=0.3, seed=0)
    save(noisy, report, conll / "train.spacy", conll / "train_noisy.spacy")
    rare, report = imbalance(docs, label="MISC", keep=0.1, seed=0)
    save(rare, report, conll / "train.spacy", conll / "train_rare_misc.spacy")
    sents, report = split_sentences(docs)
    save(sents, report, conll / "train.spacy", conll / "train_sents.spacy")
    noisy_sents, report = split_sentences(noisy)
    save(noisy_sents, report, conll / "train_noisy.spacy", conll / "train_noisy_sents.spacy")


HELDOUT_EVERY = 20


def heldout(folder: Path) -> None:
    """AIDA train split for calibration: every 20th document (5%) held out, the rest to
    train on. The linker's temperature and NIL threshold are fitted on the held-out part,
    never on testa, which the results are measured on."""
    aida = folder / "aida"
    _, docs = read_docs(aida / "train.spacy")
    kept = [doc for i, doc in enumerate(docs) if i % HELDOUT_EVERY]
    held = [doc for i, doc in enumerate(docs) if not i % HELDOUT_EVERY]
    save(kept, {"held_out_every": HELDOUT_EVERY, "role": "train"}, aida / "train.spacy", aida / "train_fit.spacy")
    save(held, {"held_out_every": HELDOUT_EVERY, "role": "heldout"}, aida / "train.spacy", aida / "heldout.spacy")


def tenth(full: Path, out: Path) -> None:
    names = ["conll/train.spacy", "conll/valid.spacy", "aida/train.spacy", "aida/testa.spacy"]
    names += [str(p.relative_to(full)) for p in sorted((full / "noisebench").glob("*.spacy"))]
    for name in names:
        _, docs = read_docs(full / name)
        write_docs(subset(docs, 0.1), out / name)


def read_conll_articles(path: Path, vocab) -> List[Doc]:
    """A 4-column IOB2 CoNLL file as one doc per -DOCSTART- article, sentence starts set.
    (spaCy's converter splits documents only on its own exact form of that line, not on
    CoNLL-2003's.)"""
    articles: List[List[List[Tuple[str, str]]]] = []
    sentence: List[Tuple[str, str]] = []
    for line in path.read_text(encoding="utf8").splitlines() + [""]:
        if line.startswith("-DOCSTART-"):
            articles.append([])
        elif not line.strip():
            if sentence:
                articles[-1].append(sentence)
            sentence = []
        else:
            parts = line.split()
            sentence.append((parts[0], parts[-1]))
    docs = []
    for sents in articles:
        words = [w for sent in sents for w, _ in sent]
        starts = [i == 0 for sent in sents for i in range(len(sent))]
        tags = [t for sent in sents for _, t in sent]
        docs.append(Doc(vocab, words=words, sent_starts=starts, ents=tags))
    return docs


def noisebench(folder: Path, out: Path) -> None:
    vocab = spacy.blank("en").vocab
    clean = read_conll_articles(folder / "clean.train.txt", vocab)
    write_docs(read_conll_articles(folder / "clean.dev.txt", vocab), out / "dev.spacy")
    write_docs(clean, out / "clean.spacy")
    for path in sorted(folder.glob("*.train.txt")):
        if path.name != "clean.train.txt":
            convert_label_set(path, label_set_name(path), clean, out)


def label_set_name(path: Path, reserved: Sequence[str] = ()) -> str:
    """NAME of NAME.train.txt (or of NAME.txt): the label set's name in the benchmark.

    reserved (Sequence[str]): Names a user's label set may not take (NoiseBench's own)."""
    name = path.name[: -len(".train.txt")] if path.name.endswith(".train.txt") else path.stem
    taken = ["clean", "dev", *reserved]
    if not name or not all(c.isalnum() or c in "_-" for c in name) or name in taken:
        raise SystemExit(f"{path}: the label set's name {name!r} (from the file name) must be letters, digits, "
                         f"'_' or '-', and none of {', '.join(taken)}. Rename the file.")
    return name


def convert_label_set(path: Path, name: str, clean: List[Doc], out: Path) -> Dict:
    """A noisy label set over NoiseBench's training articles (4-column CoNLL, like
    clean.train.txt) as NAME.spacy, its oracle (sentences that differ from the clean labels
    masked) as NAME.oracle.spacy, the partial oracles of PARTIAL_ORACLES as
    NAME.oracle_SUFFIX.spacy, and its noise report as NAME.json."""
    noisy = read_conll_articles(path, clean[0].vocab)
    if [[t.text for t in d] for d in noisy] != [[t.text for t in d] for d in clean]:
        raise SystemExit(f"{path} does not line up with NoiseBench's clean.train.txt token by token: a label set "
                         "must label the same articles, tokens and order.")
    write_docs(noisy, out / f"{name}.spacy")
    oracle, report = mask_differing_sentences(clean, noisy)
    report.update({"input": str(path), "docs": len(oracle)})
    write_docs(oracle, out / f"{name}.oracle.spacy")
    for suffix, kinds in PARTIAL_ORACLES.items():
        partial, partial_report = mask_differing_sentences(clean, noisy, kinds)
        report[f"sentences_masked_{suffix}"] = partial_report["sentences_masked"]
        write_docs(partial, out / f"{name}.oracle_{suffix}.spacy")
    write_report(report, out / f"{name}.json")
    return report


def noisebench_labels(path: Path, out: Path, reserved: Sequence[str] = ()) -> str:
    """Add one more label set to a converted NoiseBench folder (`noisebench_grid.py
    --noisy-train`); RETURNS its name. `reserved`: see `label_set_name`."""
    name = label_set_name(path, reserved)
    if not path.exists():
        raise SystemExit(f"--noisy-train {path}: no such file.")
    if not (out / "clean.spacy").exists():
        raise SystemExit(f"{out / 'clean.spacy'} is missing: run the benchmark's `corpus` command first.")
    clean = list(DocBin().from_disk(out / "clean.spacy").get_docs(spacy.blank("en").vocab))
    report = convert_label_set(path, name, clean, out)
    print(f"{name}: {report['sentences_differing']} of {report['sentences']} sentences differ from the clean labels")
    return name


def ent_set(doc: Doc, start: int, end: int) -> set:
    return {(e.start, e.end, e.label_) for e in doc.ents if start <= e.start and e.end <= end}


# Oracles that mask only some kinds of mislabeled sentence (kinds of `noise_kind`): how much
# of the full oracle's gain each kind carries. "missing": the sentences whose labels only
# miss clean entities; "rest": all the others. "spans": every sentence whose labelled spans
# differ from the clean ones (missing, extra or cut differently), the sentences an
# outside-token loss can see at all; it keeps those that differ only in a type.
PARTIAL_ORACLES = {"missing": {"missing"}, "rest": {"type", "spurious", "mixed"}, "spans": {"missing", "spurious", "mixed"}}


def noise_kind(clean: Doc, noisy: Doc, start: int, end: int) -> Optional[str]:
    """None if the sentence's labels equal the clean ones, else how they differ: "missing"
    (only clean entities absent), "spurious" (only extra spans), "type" (same spans, another
    label) or "mixed"."""
    gold, labels = ent_set(clean, start, end), ent_set(noisy, start, end)
    if gold == labels:
        return None
    gold_spans, label_spans = {s[:2] for s in gold}, {s[:2] for s in labels}
    if gold_spans == label_spans:
        return "type"
    if gold_spans > label_spans and labels <= gold:
        return "missing"
    if label_spans > gold_spans and gold <= labels:
        return "spurious"
    return "mixed"


def mask_differing_sentences(
    clean: List[Doc], noisy: List[Doc], kinds: Optional[set] = None
) -> Tuple[List[Doc], Dict]:
    """The noisy docs with the sentences whose labels differ from the clean ones set to
    missing (only those whose `noise_kind` is in kinds, if given), and the counts of
    differing sentences (by kind), masked sentences and wrong entities."""
    out, n_sents, n_masked, by_kind, clean_ents, wrong_ents = [], 0, 0, Counter(), 0, 0
    for c, n in zip(clean, noisy):
        doc = n.copy()
        missing = []
        for sent in sentences(c):
            n_sents += 1
            gold, labels = ent_set(c, sent.start, sent.end), ent_set(n, sent.start, sent.end)
            clean_ents += len(gold)
            wrong_ents += len(labels - gold)
            kind = noise_kind(c, n, sent.start, sent.end)
            if kind is not None:
                by_kind[kind] += 1
                if kinds is None or kind in kinds:
                    missing.append(doc[sent.start : sent.end])
        n_masked += len(missing)
        kept = [e for e in doc.ents if not any(m.start <= e.start < m.end for m in missing)]
        doc.set_ents(kept, missing=missing, default="unmodified")
        out.append(doc)
    n_diff = sum(by_kind.values())
    report = {"sentences": n_sents, "sentences_differing": n_diff, "sentence_noise": round(n_diff / max(n_sents, 1), 4),
              "sentences_differing_by_kind": dict(sorted(by_kind.items())), "sentences_masked": n_masked,
              "clean_entities": clean_ents, "noisy_entities_not_in_clean": wrong_ents}
    return out, report


def save(docs: List[Doc], report: Dict, source: Path, path: Path) -> None:
    """The docs, and beside them (same name, .json) the report of how they were made."""
    report.update({"input": str(source), "docs": len(docs)})
    write_docs(docs, path)
    write_report(report, path.with_suffix(".json"))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] in ("derive", "tenth", "noisebench", "heldout"):
        if sys.argv[1] == "derive":
            derive(Path(sys.argv[2]))
        elif sys.argv[1] == "heldout":
            heldout(Path(sys.argv[2]))
        elif sys.argv[1] == "tenth":
            tenth(Path(sys.argv[2]), Path(sys.argv[3]))
        else:
            noisebench(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["subset", "noise", "imbalance", "sentences"])
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--label", default="MISC")
    parser.add_argument("--keep", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    _, docs = read_docs(args.input)
    if args.mode == "subset":
        out, report = subset(docs, args.fraction), {"fraction": args.fraction}
    elif args.mode == "noise":
        out, report = noise(docs, args.rate, args.seed)
    elif args.mode == "imbalance":
        out, report = imbalance(docs, args.label, args.keep, args.seed)
    else:
        out, report = split_sentences(docs)
    report.update({"input": str(args.input), "docs": len(out)})
    write_docs(out, args.output)
    write_report(report, args.report)


if __name__ == "__main__":
    main()
