"""The project workflow, run end to end on the demo data with the tiny test model."""
import re
import shutil
from pathlib import Path

import pytest
import srsly

weasel = pytest.importorskip("weasel")
from weasel.cli.run import project_run  # noqa: E402
from weasel.util import load_project_config  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1] / "project"


def test_project_all_on_demo(tmp_path, tiny_bert):
    root = tmp_path / "project"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns("assets", "corpus", "training", "benchmarks"))
    # 12 updates of 500 words: past the first epoch of the demo's ~4,500 words, so the
    # sampler's tables have a sampled epoch
    overrides = {"vars.model": tiny_bert, "vars.max_steps": 12, "vars.batch_size": 500,
                 "vars.el_max_steps": 6, "vars.eval_frequency": 6, "vars.el_eval_frequency": 6}
    project_run(root, "all", overrides=overrides, capture=True)
    config = load_project_config(root, overrides=overrides)
    commands = {c["name"]: c for c in config["commands"]}
    for step in config["workflows"]["all"]:
        for output in commands[step].get("outputs", []):
            assert (root / output).exists(), f"{step} did not write {output}"
    report = (root / "training" / "report.md").read_text()
    assert re.search(r"\| uniform \| \d+\.\d \| \d+\.\d \| \d+\.\d \|", report)
    # denoise as init-config writes it: span units (entity spans and outside tokens), so an
    # epoch proposes every token of the 300 sentences' ~4,500
    assert re.search(r"\| 1 \| \d{4} \| \d+ \| [01]\.\d\d \|", report)
    # how well rejection found the demo's missed entities, from the clean labels
    assert "How well rejection found the noise" in report
    assert re.search(r"\| 1 \| \d{4} \| \d+ \| \d+ \| ", report)
    assert re.search(r"\| prior baseline \| \d+\.\d \|", report)
    assert re.search(r"\| rsft_entity_linker \| \d+\.\d \|", report)
    log = list(srsly.read_jsonl(root / "training" / "ner_uniform_log.jsonl"))
    assert log and all("ents_f" in row["scores"] for row in log)
    stats = list(srsly.read_jsonl(root / "training" / "ner_rsft_stats.jsonl"))
    assert stats and stats[0]["warmup"] and not stats[-1]["warmup"]
