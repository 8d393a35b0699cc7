"""The benchmark's own machinery: the derived training sets, the per-system commands (with
the tiny test model on the demo data) and the report."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin

weasel = pytest.importorskip("weasel")
from weasel.cli.run import project_run  # noqa: E402

from spacy_rsft.cli.benchmark import QUICK_VARS, SEED_COMMANDS, benchmark_overrides  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1] / "project"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_docs(n: int = 60):
    nlp = spacy.blank("en")
    docs = []
    for i in range(n):
        words = ["Anna", "Berg", "met", "Tom", "in", "Oslo", ".", "The", "Euro", "rose", "."]
        doc = Doc(nlp.vocab, words=words, sent_starts=[True] + [False] * 6 + [True] + [False] * 3)
        ents = [("PER", 0, 2), ("PER", 3, 4), ("LOC", 5, 6)]
        if i % 3 == 0:
            ents.append(("MISC", 8, 9))
        doc.ents = [doc.char_span(doc[s].idx, doc[e - 1].idx + len(doc[e - 1]), label=lab) for lab, s, e in ents]
        docs.append(doc)
    return docs


def test_noise_corrupts_the_requested_share_and_keeps_the_text():
    bench_data = load_script("bench_data")
    docs = make_docs(200)
    noisy, report = bench_data.noise(docs, rate=0.3, seed=0)
    assert 0.25 < report["corrupted_share"] < 0.35
    assert report["type_swap"] and report["boundary_shift"] and report["deletion"]
    changed = 0
    for before, after in zip(docs, noisy):
        assert [t.text for t in before] == [t.text for t in after]
        assert [t.is_sent_start for t in before] == [t.is_sent_start for t in after]
        old = {(e.start, e.end, e.label_) for e in before.ents}
        changed += len(old - {(e.start, e.end, e.label_) for e in after.ents})
        for ent in after.ents:  # shifted boundaries stay inside the sentence
            assert ent.sent.start <= ent.start and ent.end <= ent.sent.end
    assert changed == report["corrupted"]
    again, _ = bench_data.noise(docs, rate=0.3, seed=0)
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in again] == [
        [(e.start, e.end, e.label_) for e in d.ents] for d in noisy
    ]


def test_imbalance_drops_sentences_of_the_label_only():
    bench_data = load_script("bench_data")
    docs = make_docs(300)
    rare, report = bench_data.imbalance(docs, label="MISC", keep=0.1, seed=0)
    assert report["entities_before"]["MISC"] == 100
    assert 2 <= report["entities_after"]["MISC"] <= 25
    assert report["entities_after"]["PER"] == report["entities_before"]["PER"]
    assert sum(len(list(doc.sents)) for doc in rare) == 600 - (100 - report["entities_after"]["MISC"])


def test_sentences_line_up_across_the_clean_and_the_noisy_set():
    bench_data = load_script("bench_data")
    docs = make_docs(50)
    noisy, _ = bench_data.noise(docs, rate=0.3, seed=0)
    clean_sents, report = bench_data.split_sentences(docs)
    noisy_sents, _ = bench_data.split_sentences(noisy)
    assert report == {"docs_before": 50, "sentences": 100} and len(noisy_sents) == 100
    assert [d.text for d in clean_sents] == [d.text for d in noisy_sents]
    assert [e.label_ for e in clean_sents[0].ents] == ["PER", "PER", "LOC"]
    corrupted = sum(
        len({(e.start, e.end, e.label_) for e in c.ents} - {(e.start, e.end, e.label_) for e in n.ents})
        for c, n in zip(clean_sents, noisy_sents)
    )
    assert 0 < corrupted < sum(len(d.ents) for d in docs)


def test_quick_overrides_point_at_the_tenth_of_the_data():
    quick = benchmark_overrides("quick", seed=2)
    assert quick["vars.seed"] == 2 and quick["vars.bench_dir"] == "training/benchmark_quick_seed2"
    assert all(quick[f"vars.{key}"] == value for key, value in QUICK_VARS.items())
    spread = benchmark_overrides("spread", seed=1)
    assert spread["vars.bench_train"] == QUICK_VARS["bench_train"]
    assert spread["vars.bench_max_steps"] == 2 * QUICK_VARS["bench_max_steps"]
    assert spread["vars.bench_dir"] == "training/benchmark_spread_seed1"
    assert spread["vars.bench_report_dir"] == "benchmarks/spread"
    full = benchmark_overrides("full", seed=0)
    assert full["vars.bench_dir"] == "training/benchmark" and "vars.bench_train" not in full
    with pytest.raises(ValueError):
        benchmark_overrides("fast", seed=0)


def test_quick_with_several_seeds_points_at_spread():
    from typer.testing import CliRunner

    from spacy_rsft.cli import app

    result = CliRunner().invoke(app, ["benchmark", str(PROJECT), "--quick", "--seeds", "0,1"])
    assert result.exit_code != 0 and "--spread" in result.output


def test_seed_commands_are_in_the_benchmark_workflow():
    from weasel.util import load_project_config

    workflows = load_project_config(PROJECT)["workflows"]
    assert set(SEED_COMMANDS) <= set(workflows["benchmark"]) and workflows["benchmark"][-1] == "bench-report"
    assert not set(workflows["benchmark-sentences"][:-1]) & set(workflows["benchmark"])


def test_benchmark_commands_and_report(tmp_path, tiny_bert):
    root = tmp_path / "project"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns("assets", "corpus", "training", "benchmarks"))
    overrides = {"vars.model": tiny_bert}
    project_run(root, "demo-data", overrides=overrides, capture=True)
    project_run(root, "convert", overrides=overrides, capture=True)
    overrides.update(
        {
            "vars.bench_train": "corpus/train.spacy",
            "vars.bench_dev": "corpus/dev.spacy",
            "vars.bench_max_steps": 6,
            "vars.bench_warmup_steps": 1,
            "vars.bench_eval_frequency": 3,
            "vars.bench_batch_size": 300,
            "vars.bench_speed_runs": 1,
        }
    )
    commands = ["bench-noise-data", "bench-ner-cnn", "bench-ner-trf", "bench-ner-uniform", "bench-ner-hard",
                "bench-noisy-uniform", "bench-noisy-denoise", "bench-sent-data"]
    for command in commands:
        project_run(root, command, overrides=overrides, capture=True)
    bench = root / "training" / "benchmark"
    for system in ["ner_cnn", "ner_trf", "ner_uniform", "ner_hard"]:
        train = json.loads((bench / system / "train.json").read_text())
        assert train["steps"] == 6 and [e["step"] for e in train["evaluations"]] == [0, 3, 6]
        assert train["words_seen"] > 0 and train["peak_rss_mb"] > 0
        assert "ents_per_type" in train["evaluations"][-1]["scores"]
        assert json.loads((bench / system / "speed.json").read_text())["words_per_second_median"] > 0
    assert json.loads((bench / "data" / "sents.json").read_text())["sentences"] == len(
        DocBin().from_disk(bench / "data" / "train_noisy_sents.spacy")
    )
    stats = [json.loads(line) for line in (bench / "ner_hard" / "sampler_stats.jsonl").read_text().splitlines()]
    assert stats[0]["warmup"] and stats[0]["target"] == "hard"
    project_run(root, "bench-report", overrides=overrides, capture=True)
    report = (root / "benchmarks" / "results.md").read_text()
    results = json.loads((root / "benchmarks" / "results.json").read_text())
    assert set(results["systems"]) >= {"ner_cnn", "ner_trf", "ner_uniform", "ner_hard", "noisy_uniform", "noisy_denoise"}
    assert "| `rsft_ner`, RSFT `denoise` | not run yet |" in report
    assert "| spaCy `entity_linker` (anchor) | not run yet |" in report
    assert results["noise"]["clean_uniform_f1"] == results["systems"]["ner_uniform"]["best_scores"]["ents_f"]
    assert (root / "benchmarks" / "ner_f1_vs_steps.png").exists()


def test_paired_differences_pair_runs_of_the_same_seed_only():
    report = load_script("bench_report")
    spread = {
        "ner_uniform": {"values": [90.0, 91.0, 89.0], "runs": ["seed0", "seed1", "seed2"]},
        "ner_hard": {"values": [91.0, 90.5], "runs": ["seed0", "seed2"]},  # seed1 missing
        "ner_denoise": {"values": [88.0], "runs": ["seed0"]},  # one seed: no spread
    }
    paired = report.paired_differences(spread)
    assert list(paired) == ["ner_hard - ner_uniform"]
    assert paired["ner_hard - ner_uniform"]["values"] == [1.0, 1.5]
    assert paired["ner_hard - ner_uniform"]["mean"] == 1.25
    assert paired["ner_hard - ner_uniform"]["df"] == 1
    assert abs(paired["ner_hard - ner_uniform"]["t"] - 5.0) < 1e-9  # 1.25 / (0.3536 / sqrt(2))
