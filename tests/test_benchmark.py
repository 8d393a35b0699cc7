"""The benchmark project (project/benchmarks): the derived training sets, systems.yml and the
system files, the runner's plans and fingerprints, a real run of two systems with the tiny
test model, the report on synthetic results, and (slow) the weasel round trip."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
import typer
from spacy.tokens import Doc, DocBin, Span

weasel = pytest.importorskip("weasel")
pytest.importorskip("matplotlib")
from weasel.cli.run import project_run  # noqa: E402
from weasel.util import load_project_config  # noqa: E402

BENCHMARK = Path(__file__).resolve().parents[1] / "project" / "benchmarks"
sys.path.insert(0, str(BENCHMARK / "scripts"))
import bench  # noqa: E402
import collect  # noqa: E402
import data as bench_data  # noqa: E402
import noisebench_grid  # noqa: E402
import render  # noqa: E402


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
    docs = make_docs(300)
    rare, report = bench_data.imbalance(docs, label="MISC", keep=0.1, seed=0)
    assert report["entities_before"]["MISC"] == 100
    assert 2 <= report["entities_after"]["MISC"] <= 25
    assert report["entities_after"]["PER"] == report["entities_before"]["PER"]
    assert sum(len(list(doc.sents)) for doc in rare) == 600 - (100 - report["entities_after"]["MISC"])


def test_sentences_line_up_across_the_clean_and_the_noisy_set():
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




# -- systems.yml and the system files ------------------------------------------------------


def test_every_system_is_one_file_and_one_line():
    spec = bench.load_benchmark(BENCHMARK)  # fails on a listed system without its file
    files = {p.stem for p in (BENCHMARK / "systems").glob("*.cfg")}
    assert files == {s.file for s in spec.systems.values()}, "a system file without its line in systems.yml, or the reverse"
    for name, system in spec.systems.items():
        assert system.group in spec.groups, f"{name}: unknown group {system.group}"
        options = bench.read_partial_config(BENCHMARK / "systems" / f"{system.file}.cfg")["benchmark"]
        if options.get("kind", "train") == "train":
            assert (BENCHMARK / "configs" / options["base"]).exists(), f"{name}: no base config {options['base']}"
        assert "dev" in options["inputs"], f"{name}: no dev set"
    for scale in spec.scales.values():
        assert set(scale.systems or []) <= set(spec.systems)
        assert set(scale.settings) <= {s.suite for s in spec.systems.values()}


def test_every_suite_is_a_command_of_the_workflow():
    config = load_project_config(BENCHMARK)
    scripts = {c["name"]: " ".join(c["script"]) for c in config["commands"]}
    suites = {s.suite for s in bench.load_benchmark(BENCHMARK).systems.values()}
    # a suite runs at the workflow's scale through run.py, or (noisebench) through the grid
    # script that calls it; a command may also train a suite's models at a fixed scale of its
    # own (inference-table), which is not the suite's command
    scale = config["vars"]["scale"]  # load_project_config substitutes the variables
    runners = {suite: [f"scripts/run.py {suite} --scale {scale} "] for suite in suites}
    runners["noisebench"].append(f"scripts/noisebench_grid.py --scale {scale} ")

    def runs(script: str, suite: str) -> bool:
        return any(runner in script for runner in runners[suite])

    commands_running = {suite: [n for n, script in scripts.items() if runs(script, suite)] for suite in suites}
    assert all(len(names) == 1 for names in commands_running.values()), commands_running
    benchmark = config["workflows"]["benchmark"]
    assert benchmark.index("collect") > max(benchmark.index(commands_running[s][0]) for s in ("ner", "el"))
    assert benchmark[-2:] == ["collect", "render"]


def test_plans_reproduce_the_settings_that_differ():
    spec = bench.load_benchmark(BENCHMARK)
    full = spec.scale("full")
    hard = bench.make_plan(spec, spec.systems["ner_hard"], full, 0, "some-model")
    assert hard.config["corpora"]["train"]["target"] == "hard"
    assert hard.config["training"]["max_steps"] == 500
    assert hard.config["training"]["optimizer"]["learn_rate"]["warmup_steps"] == 50
    assert hard.config["paths"]["model"] == "some-model"
    assert hard.inputs["train"] == BENCHMARK / "corpus" / "full" / "conll" / "train.spacy"
    # the CNN anchor has no warm-up: the scale's warmup_steps passes it by
    cnn = bench.make_plan(spec, spec.systems["ner_cnn"], spec.scale("quick"), 1, "m")
    assert "training.optimizer.learn_rate.warmup_steps" not in cnn.overrides
    assert cnn.config["training"]["max_steps"] == 50 and cnn.config["system"]["seed"] == 1
    assert cnn.inputs["dev"] == BENCHMARK / "corpus" / "tenth" / "conll" / "valid.spacy"
    el = bench.make_plan(spec, spec.systems["el_uniform"], full, 0, "m")
    generator = el.config["components"]["rsft_entity_linker"]["candidate_generator"]
    assert generator["@misc"] == "spacy-rsft.doc_candidates.v1" and generator["path"] == "${paths.candidates}"
    assert el.config["training"]["max_steps"] == 300
    noisy = bench.make_plan(spec, spec.systems["noisy_denoise"], full, 0, "m")
    assert noisy.clean_train == BENCHMARK / "corpus" / "full" / "conll" / "train.spacy"


def test_a_line_with_variants_runs_one_file_over_several_data_sets():
    spec = bench.load_benchmark(BENCHMARK)
    names = [n for n, s in spec.systems.items() if s.file == "nb_denoise_sent"]
    assert names == ["nb_denoise_sent@noise_expert", "nb_denoise_sent@noise_crowdbest", "nb_denoise_sent@noise_distant"]
    distant = spec.systems["nb_denoise_sent@noise_distant"]
    assert distant.baseline == "nb_uniform@noise_distant" and distant.reference == "nb_clean"
    plan = bench.make_plan(spec, distant, spec.scale("full"), 0, "m")
    assert plan.inputs["train"].name == "noise_distant.spacy"
    assert plan.config["corpora"]["train"]["unit"] == "sentence"
    assert plan.clean_train.name == "clean.spacy"


def test_a_line_with_a_file_reruns_another_system_under_its_own_name(monkeypatch):
    """`file: OTHER`: the same system file, another row (every seed again on one device): the
    same config and fingerprint, results of its own."""
    monkeypatch.setattr(bench, "digest", str)  # the corpus need not be built: a path stands for its content
    spec = bench.load_benchmark(BENCHMARK)
    rerun, original = spec.systems["nb_crossfit_dfold_cpu@noise_distant"], spec.systems["nb_crossfit_dfold@noise_distant"]
    assert rerun.file == original.file == "nb_crossfit_dfold" and rerun.baseline == "nb_uniform@noise_distant"
    full = spec.scale("full")
    plans = [bench.make_plan(spec, system, full, 1, "m") for system in (rerun, original)]
    assert plans[0].fingerprint() == plans[1].fingerprint()
    assert bench.result_path(BENCHMARK, "full", rerun, 1) != bench.result_path(BENCHMARK, "full", original, 1)



# -- running systems -----------------------------------------------------------------------


@pytest.fixture
def tiny_benchmark(tmp_path):
    """A copy of the benchmark project with a tiny scale and tiny data."""
    root = tmp_path / "benchmarks"
    shutil.copytree(BENCHMARK, root, ignore=shutil.ignore_patterns("corpus", "training", "results", "assets", "__pycache__"))
    spec = srsly.read_yaml(root / "systems.yml")
    tiny_ner = {"training.max_steps": 4, "training.eval_frequency": 2, "training.batcher.size": 200,
                "training.optimizer.learn_rate.warmup_steps": 1}
    spec["scales"] = {"tiny": {"data": "tiny", "seeds": [0, 1], "speed_runs": 1, "systems": ["ner_cnn", "ner_uniform", "ner_hard"],
                               "settings": {"ner": tiny_ner}}}
    srsly.write_yaml(root / "systems.yml", spec)
    conll = root / "corpus" / "tiny" / "conll"
    conll.mkdir(parents=True)
    docs = make_docs(24)
    DocBin(docs=docs[:16]).to_disk(conll / "train.spacy")
    DocBin(docs=docs[16:]).to_disk(conll / "valid.spacy")
    return root


def run_suite(root: Path, model: str, *extra: str) -> str:
    cmd = [sys.executable, "scripts/run.py", "ner", "--scale", "tiny", "--model", model, *extra]
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_runner_trains_records_and_reruns_only_what_changed(tiny_benchmark, tiny_bert):
    root = tiny_benchmark
    out = run_suite(root, tiny_bert, "--seeds", "0", "--only", "ner_cnn,ner_uniform")
    assert out.count(": running") == 2
    runs = root / "results" / "tiny" / "runs" / "ner"
    uniform = json.loads((runs / "ner_uniform" / "seed0.json").read_text())
    assert uniform["steps"] == 4 and [c[0] for c in uniform["curve"]] == [0, 2, 4]
    assert uniform["settings"]["training.max_steps"] == 4 and uniform["settings"]["system.seed"] == 0
    assert set(uniform["best_scores"]) >= {"ents_f", "ents_p", "ents_r"}
    assert uniform["sampler"]["epochs"] >= 1 and uniform["train_peak_rss_mb"] > 0
    # memory at every evaluation: [step, resident MB, peak MB so far], the peak never falling
    memory = uniform["memory_curve"]
    assert [m[0] for m in memory] == [0, 2, 4] and all(0 < m[1] <= m[2] for m in memory)
    assert [m[2] for m in memory] == sorted(m[2] for m in memory)
    assert (root / "training" / "tiny" / "ner_uniform" / "seed0" / "model-best").is_dir()
    # nothing changed: nothing reruns
    out = run_suite(root, tiny_bert, "--seeds", "0", "--only", "ner_cnn,ner_uniform")
    assert out.count("up to date, skipped") == 2 and ": running" not in out
    # a changed system file reruns exactly that system
    with (root / "systems" / "ner_uniform.cfg").open("a") as file_:
        file_.write("temperature = 0.25\n")
    out = run_suite(root, tiny_bert, "--seeds", "0", "--only", "ner_cnn,ner_uniform")
    assert "tiny/ner_uniform/seed0: running" in out and "tiny/ner_cnn/seed0: up to date" in out
    # changed input content reruns everything that reads it
    docs = list(DocBin().from_disk(root / "corpus" / "tiny" / "conll" / "valid.spacy").get_docs(spacy.blank("en").vocab))
    DocBin(docs=docs[:-1]).to_disk(root / "corpus" / "tiny" / "conll" / "valid.spacy")
    out = run_suite(root, tiny_bert, "--seeds", "0", "--only", "ner_cnn")
    assert "tiny/ner_cnn/seed0: running" in out


def test_a_two_pass_system_waits_for_the_model_it_filters_with(monkeypatch):
    """nb_filtered_sentmix filters its train set with nb_denoise_sentmix's model-best of the
    same label set and seed (a file inside that run's folder): it waits until that run has
    finished (its train.json written after the file), and run.py passes the filter settings."""
    import run as bench_run

    spec = bench.load_benchmark()
    plan = bench.make_plan(spec, spec.systems["nb_filtered_sentmix@noise_crowdbest"], spec.scale("full"), 97, "m")
    folder = spec.root / "training" / "full" / "nb_denoise_sentmix@noise_crowdbest" / "seed97"
    model = folder / "model-best" / "rsft_ner" / "model"
    assert plan.inputs["filter_model"] == model
    assert plan.config["corpora"]["train"]["target"] == "uniform"
    assert bench.missing_run_outputs(spec.root, plan) == [model]
    calls = []
    try:
        model.parent.mkdir(parents=True)
        model.write_bytes(b"weights")
        assert bench.missing_run_outputs(spec.root, plan) == [model]  # still training
        (folder / "train.json").write_text("{}")
        assert bench.missing_run_outputs(spec.root, plan) == []
        monkeypatch.setattr(bench_run, "call", lambda cmd, env=None, log=None: calls.append(cmd))
        filtered = bench_run.filter_train(plan, spec.root / "training" / "full" / "not_written")
    finally:
        shutil.rmtree(folder)
    cmd = calls[0]
    assert cmd[2:7] == ["spacy_rsft", "filter", str(folder / "model-best"), str(plan.inputs["train"]), str(filtered)]
    assert cmd[cmd.index("--loss-tokens") + 1] == "outside" and cmd[cmd.index("--rate") + 1] == "mixture"
    assert "--choose" not in cmd and cmd[cmd.index("--seed") + 1] == "97"
    control = bench.make_plan(spec, spec.systems["nb_filtered_random_sentmix@noise_crowdbest"], spec.scale("full"), 97, "m")
    assert control.inputs["filter_model"] == model and control.options["filter_choose"] == "random"


def test_a_cross_fitted_system_trains_a_model_per_fold_then_filters_with_them(monkeypatch, tmp_path):
    """nb_crossfit: run.py splits the train set into folds, trains one model per fold on the
    other folds for filter_fold_steps updates (the schedule's length with it), filters with
    the fold models' template and --folds; the fold models are kept by what trains them, so a
    rerun and a system that only filters differently reuse them, and another seed does not."""
    import run as bench_run

    spec = bench.load_benchmark()
    plan = bench.make_plan(spec, spec.systems["nb_crossfit@noise_crowdbest"], spec.scale("full"), 97, "m")
    assert "filter_model" not in plan.inputs and plan.options["filter_folds"] == 2
    calls = []

    def fake_call(cmd, env=None, log=None):
        calls.append(cmd)
        if "train.py" in cmd[1]:  # a finished training writes train.json
            (Path(cmd[3]) / "train.json").write_text("{}")
        if cmd[3] == "folds":
            Path(cmd[5]).mkdir(parents=True, exist_ok=True)
            (Path(cmd[5]) / "folds.json").write_text("{}")

    def trainings():
        return [c for c in calls if "train.py" in c[1]]

    monkeypatch.setattr(bench_run, "call", fake_call)
    monkeypatch.setattr(bench, "digest", str)  # the corpus need not be built: a path stands for its content
    scale_dir = tmp_path / "training" / "full"
    filtered = bench_run.crossfit_filter(plan, scale_dir / "nb_crossfit@noise_crowdbest" / "seed97")
    folds = scale_dir / "_folds" / bench_run.fold_fingerprint(plan)[:16]
    assert calls[0][2:5] == ["spacy_rsft", "folds", str(plan.inputs["train"])] and calls[0][calls[0].index("--folds") + 1] == "2"
    assert [c[3] for c in trainings()] == [str(folds / "model0"), str(folds / "model1")]
    for fold, cmd in enumerate(trainings()):
        assert cmd[cmd.index("--paths.train") + 1] == str(folds / f"train{fold}.spacy")
        assert cmd[cmd.index("--training.max_steps") + 1] == "240"
        assert cmd[cmd.index("--training.optimizer.learn_rate.total_steps") + 1] == "240"
        assert "--training.eval_frequency" not in cmd
    cmd = calls[-1]
    assert cmd[2:7] == ["spacy_rsft", "filter", str(folds / "model{fold}" / "model-best"), str(plan.inputs["train"]),
                        str(filtered)]
    assert cmd[cmd.index("--folds") + 1] == str(folds / "folds.json") and cmd[cmd.index("--loss-tokens") + 1] == "all"
    # a rerun, and a system that ranks the same fold models' losses another way, train nothing
    calls.clear()
    bench_run.crossfit_filter(plan, scale_dir / "nb_crossfit@noise_crowdbest" / "seed97")
    outside = bench.make_plan(spec, spec.systems["nb_crossfit_out@noise_crowdbest"], spec.scale("full"), 97, "m")
    assert outside.options["filter_loss_tokens"] == "outside" and outside.fingerprint() != plan.fingerprint()
    bench_run.crossfit_filter(outside, scale_dir / "nb_crossfit_out@noise_crowdbest" / "seed97")
    assert not trainings() and calls[-1][calls[-1].index("--loss-tokens") + 1] == "outside"
    # the held-out rate: the same fold models, the dev set as the held-out set
    heldout = bench.make_plan(spec, spec.systems["nb_crossfit_heldout@noise_crowdbest"], spec.scale("full"), 97, "m")
    bench_run.crossfit_filter(heldout, scale_dir / "nb_crossfit_heldout@noise_crowdbest" / "seed97")
    cmd = calls[-1]
    assert not trainings() and cmd[cmd.index("--rate") + 1] == "heldout" and cmd[cmd.index("--alpha") + 1] == "0.1"
    assert cmd[cmd.index("--heldout") + 1] == str(heldout.inputs["filter_heldout"])
    # another seed splits and trains anew
    other = bench.make_plan(spec, spec.systems["nb_crossfit@noise_crowdbest"], spec.scale("full"), 98, "m")
    bench_run.crossfit_filter(other, scale_dir / "nb_crossfit@noise_crowdbest" / "seed98")
    assert len(trainings()) == 2


def test_fold_models_can_train_with_their_own_reader(monkeypatch, tmp_path):
    """nb_crossfit_dfold: [benchmark.filter_fold_reader] gives the fold models sentmix's
    denoise reader while the run itself retrains uniform; the reader settings decide the fold
    models (nb_crossfit_out's are not reused), its random control and a system that retrains
    with another reader reuse them, and a setting the reader does not take is refused before
    anything trains."""
    import run as bench_run
    from thinc.api import Config

    spec = bench.load_benchmark()
    scale = spec.scale("full")
    plan = bench.make_plan(spec, spec.systems["nb_crossfit_dfold@noise_distant"], scale, 97, "m")
    configs = {}

    def fake_call(cmd, env=None, log=None):
        if "train.py" in cmd[1]:
            configs[Path(cmd[3]).name] = Config().from_disk(cmd[2], interpolate=False)
            (Path(cmd[3]) / "train.json").write_text("{}")
        if cmd[3] == "folds":
            Path(cmd[5]).mkdir(parents=True, exist_ok=True)
            (Path(cmd[5]) / "folds.json").write_text("{}")

    monkeypatch.setattr(bench_run, "call", fake_call)
    monkeypatch.setattr(bench, "digest", str)
    run_dir = tmp_path / "training" / "full" / "nb_crossfit_dfold@noise_distant" / "seed97"
    bench_run.crossfit_filter(plan, run_dir)
    bench_run.train(plan, run_dir)
    for fold in ("model0", "model1"):
        reader = configs[fold]["corpora"]["train"]
        assert reader["target"] == "denoise" and reader["unit"] == "sentence" and reader["noise_rate"] == "mixture"
    assert configs["seed97"]["corpora"]["train"]["target"] == "uniform"
    assert "unit" not in configs["seed97"]["corpora"]["train"]
    outside = bench.make_plan(spec, spec.systems["nb_crossfit_out@noise_distant"], scale, 97, "m")
    control = bench.make_plan(spec, spec.systems["nb_crossfit_random_dfold@noise_distant"], scale, 97, "m")
    assert bench_run.fold_fingerprint(plan) != bench_run.fold_fingerprint(outside)
    assert bench_run.fold_fingerprint(plan) == bench_run.fold_fingerprint(control)
    assert control.options["filter_choose"] == "random"
    # retraining with another reader (sentmix's) does not change what trains the fold models
    resampled = bench.make_plan(spec, spec.systems["nb_crossfit_dfold_sentmix@noise_distant"], scale, 97, "m")
    assert resampled.config["corpora"]["train"]["target"] == "denoise"
    assert bench_run.fold_fingerprint(resampled) == bench_run.fold_fingerprint(plan)
    assert resampled.fingerprint() != plan.fingerprint()
    # its control replays its acceptance; the fold models (trained with the fold reader) do not
    matched = bench.make_plan(spec, spec.systems["nb_crossfit_random_dfold_sentmix@noise_distant"], scale, 97, "m")
    assert matched.config["corpora"]["train"]["acceptance_from"] == "${paths.acceptance_from}"
    assert "acceptance_from" not in bench_run.fold_config(matched)["corpora"]["train"]
    assert bench_run.fold_fingerprint(matched) == bench_run.fold_fingerprint(plan)
    # the token pass and the refitted baseline filter with the same fold models
    calls = []
    monkeypatch.setattr(bench_run, "call", lambda cmd, env=None, log=None: calls.append(cmd))
    token_pass = {"nb_crossfit_dfold_tok": "0.01", "nb_crossfit_dfold_tok003": "0.003",
                  "nb_crossfit_dfold_randtok003": "0.003", "nb_crossfit_dfold_refit": None,
                  "nb_crossfit_dfold_tok003_sentmix": "0.003"}
    for name, share in token_pass.items():
        other = bench.make_plan(spec, spec.systems[f"{name}@noise_distant"], scale, 97, "m")
        assert bench_run.fold_fingerprint(other) == bench_run.fold_fingerprint(plan)
        bench_run.crossfit_filter(other, tmp_path / "training" / "full" / f"{name}@noise_distant" / "seed97")
        cmd = calls[-1]
        assert cmd[cmd.index("--rate") + 1] == "mixture" and "--choose" not in cmd
        if share:
            assert cmd[cmd.index("--mask-outside-top") + 1] == share
        else:
            assert "--mask-outside-top" not in cmd
        # only the control chooses its tokens at random
        random_tokens = "--mask-outside-choose" in cmd and cmd[cmd.index("--mask-outside-choose") + 1] == "random"
        assert random_tokens == name.startswith("nb_crossfit_dfold_randtok")
        # the stacked system retrains with sentmix's reader, the others uniform
        retrain = other.config["corpora"]["train"]["target"]
        assert retrain == ("denoise" if name.endswith("_sentmix") else "uniform")
    # the stacked system's control: every choice random (sentences, tokens, the reader's), sizes kept
    stacked_control = bench.make_plan(spec, spec.systems["nb_crossfit_random_dfold_tok003_sentmix@noise_distant"],
                                      scale, 97, "m")
    assert bench_run.fold_fingerprint(stacked_control) == bench_run.fold_fingerprint(plan)
    bench_run.crossfit_filter(stacked_control, tmp_path / "training" / "full" / "stacked_control" / "seed97")
    cmd = calls[-1]
    assert cmd[cmd.index("--choose") + 1] == "random" and cmd[cmd.index("--mask-outside-choose") + 1] == "random"
    assert cmd[cmd.index("--mask-outside-top") + 1] == "0.003"
    assert stacked_control.config["corpora"]["train"]["target"] == "random"
    assert "nb_crossfit_dfold_tok003_sentmix@noise_distant" in str(stacked_control.inputs["acceptance_from"])
    assert not [c for c in calls if "train.py" in c[1]]
    plan.options["filter_fold_reader"] = {"target": "denoise", "noise_rat": 0.3}
    with pytest.raises(SystemExit, match="noise_rat"):
        bench_run.fold_config(plan)


def test_a_second_cross_fitted_round_refits_on_the_first_rounds_mask(monkeypatch, tmp_path):
    """nb_crossfit_dfold2 (filter_rounds = 2): the first round is nb_crossfit_dfold's (its fold
    models reused); then the first round's masked set is split into the same folds, a uniform
    model per fold trains on it in the run's folder, and the filter scores the original labels
    again with them; the first round's report is kept beside the second's."""
    import run as bench_run
    from thinc.api import Config

    spec = bench.load_benchmark()
    scale = spec.scale("full")
    monkeypatch.setattr(bench, "digest", str)  # the corpus need not be built: a path stands for its content
    plan = bench.make_plan(spec, spec.systems["nb_crossfit_dfold2@noise_distant"], scale, 97, "m")
    one_round = bench.make_plan(spec, spec.systems["nb_crossfit_dfold@noise_distant"], scale, 97, "m")
    assert bench_run.fold_fingerprint(plan) == bench_run.fold_fingerprint(one_round)
    assert plan.fingerprint() != one_round.fingerprint()
    calls, readers = [], {}

    def fake_call(cmd, env=None, log=None):
        calls.append(cmd)
        if "train.py" in cmd[1]:
            model = Path(cmd[3])
            readers[f"{model.parent.name}/{model.name}"] = Config().from_disk(cmd[2], interpolate=False)["corpora"]["train"]
            (model / "train.json").write_text("{}")
        elif cmd[3] == "folds":
            Path(cmd[5]).mkdir(parents=True, exist_ok=True)
            (Path(cmd[5]) / "folds.json").write_text("{}")
        elif cmd[3] == "filter":
            Path(cmd[cmd.index("--report") + 1]).write_text(str(len(calls)))

    monkeypatch.setattr(bench_run, "call", fake_call)
    run_dir = tmp_path / "training" / "full" / "nb_crossfit_dfold2@noise_distant" / "seed97"
    run_dir.mkdir(parents=True)  # run.py makes the run folder before it filters
    filtered = bench_run.crossfit_filter(plan, run_dir)
    splits = [c for c in calls if c[3] == "folds"]
    filters = [c for c in calls if c[3] == "filter"]
    assert [c[4] for c in splits] == [str(plan.inputs["train"]), str(filtered)]
    assert splits[1][5] == str(run_dir / "round2") and splits[1][splits[1].index("--seed") + 1] == "97"
    assert [f[5] for f in filters] == [str(plan.inputs["train"])] * 2  # both score the original labels
    assert filters[1][4] == str(run_dir / "round2" / "model{fold}" / "model-best")
    assert filters[1][filters[1].index("--folds") + 1] == str(run_dir / "round2" / "folds.json")
    assert readers["round2/model0"]["target"] == readers["round2/model1"]["target"] == "uniform"
    assert [k for k, r in readers.items() if r["target"] == "denoise"] == [
        f"{bench_run.fold_fingerprint(plan)[:16]}/model{fold}" for fold in (0, 1)]
    first = (run_dir / "filter_report.round1.jsonl").read_text()
    assert first != (run_dir / "filter_report.jsonl").read_text()
    # a rerun trains nothing again
    calls.clear()
    bench_run.crossfit_filter(plan, run_dir)
    assert not [c for c in calls if "train.py" in c[1]] and len([c for c in calls if c[3] == "filter"]) == 2


def test_fingerprint_ignores_where_outputs_go_but_not_the_seed(tiny_benchmark):
    spec = bench.load_benchmark(tiny_benchmark)
    scale = spec.scale("tiny")
    plan = bench.make_plan(spec, spec.systems["ner_hard"], scale, 0, "m")
    same = bench.make_plan(spec, spec.systems["ner_hard"], scale, 0, "m")
    same.config["paths"]["stats"] = "elsewhere/stats.jsonl"
    assert plan.fingerprint() == same.fingerprint()
    assert plan.fingerprint() != bench.make_plan(spec, spec.systems["ner_hard"], scale, 1, "m").fingerprint()
    assert plan.fingerprint() != bench.make_plan(spec, spec.systems["ner_uniform"], scale, 0, "m").fingerprint()


def test_a_control_that_replays_another_run_waits_for_that_run(capsys):
    """nb_matched_sentmix reads the replay file beside nb_denoise_sentmix's result of the same
    label set and seed (a `{results}/...` input); before that run is on record, run.py skips
    it and says which run to do first, instead of failing the suite."""
    import run as bench_run

    spec = bench.load_benchmark()
    plan = bench.make_plan(spec, spec.systems["nb_matched_sentmix@noise_distant"], spec.scale("full"), 97, "m")
    expected = spec.root / "results" / "full" / "runs" / "noisebench" / "nb_denoise_sentmix@noise_distant" / "seed97.replay.jsonl"
    assert plan.inputs["acceptance_from"] == expected
    assert plan.config["corpora"]["train"]["target"] == "random"
    assert bench.missing_run_outputs(spec.root, plan) == [expected]
    assert bench_run.run(spec, plan) is False
    assert "nb_denoise_sentmix@noise_distant/seed97.replay.jsonl: run that system and seed first" in capsys.readouterr().out
    assert not bench.run_dir(spec.root, "full", plan.system.name, 97).exists()
    try:
        expected.write_text('{"epoch": 0, "proposed": 4353, "mean_acceptance": {"all": 1.0}}\n')
        assert bench.missing_run_outputs(spec.root, plan) == []
    finally:
        expected.unlink()


def test_a_runs_replay_file_digests_like_its_stats_file(tmp_path):
    """run.py writes a run's stats cut to its mean acceptances beside its result; a control's
    fingerprint digests what it replays, so it is the same from either file, and changes
    with the acceptances."""
    out = tmp_path / "training" / "full" / "nb_denoise_sentmix@noise_distant" / "seed0"
    out.mkdir(parents=True)
    lines = [{"epoch": e, "unit": "sentence", "context": "document", "proposed": 4, "acceptance": a,
              "losses": [0.1, 0.2, 0.3, 0.4]} for e, a in enumerate([[1.0] * 4, [1.0, 0.5, 0.2, 0.1]])]
    (out / "sampler_stats.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    target = tmp_path / "results" / "full" / "runs" / "noisebench" / "nb_denoise_sentmix@noise_distant" / "seed0.json"
    replay = bench.write_replay(out, target)
    assert replay == target.with_suffix(".replay.jsonl")
    written = [json.loads(line) for line in replay.read_text().splitlines()]
    assert [line["mean_acceptance"] for line in written] == [{"all": 1.0}, {"all": 0.45}]
    assert all("acceptance" not in line and "losses" not in line for line in written)
    assert bench.digest(replay) == bench.digest(out / "sampler_stats.jsonl")
    lines[1]["acceptance"] = [1.0, 0.5, 0.2, 0.2]
    (out / "sampler_stats.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert bench.digest(replay) != bench.digest(out / "sampler_stats.jsonl")
    assert bench.write_replay(tmp_path, target) is None  # no stats: nothing to replay


def test_a_replay_file_from_a_results_realized_acceptance(tmp_path):
    """A result whose training folder is gone still records each sampled epoch's realized
    acceptance: write_replays.py turns it into a replay file (warm-up epochs at 1.0), which
    the reader accepts and which says where it came from."""
    import write_replays
    from spacy_rsft.sampling.reader import read_acceptances

    result = {"sampler": {"epochs": 3, "sampled_epochs": 2, "acceptance": [0.83, 0.7]},
              "noise_detection": {"unit": "sentence", "epochs": [{"epoch": 1, "all": {"units": 4353}}]}}
    units = {"unit": "sentence", "context": "document", "span_kinds": "both"}
    lines = write_replays.realized_lines(result, units)
    assert [line["mean_acceptance"]["all"] for line in lines] == [1.0, 0.83, 0.7]
    assert all(line["source"].startswith("realized") and line["proposed"] == 4353 for line in lines)
    path = tmp_path / "seed0.replay.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    replayed = read_acceptances(path, units)
    assert replayed[2].units == 4353 and replayed[2].means == {"all": 0.7}


def test_a_filter_report_becomes_detection_numbers_and_a_report_table(tmp_path):
    """metrics.filter_summary reads the filter's report against the clean labels: a rejected
    sentence whose labels differ is a hit; render shows one row per run."""
    import metrics

    vocab = spacy.blank("en").vocab
    words = ["Anna", "met", "Tom", ".", "Rome", "won", "."]
    starts = [True, False, False, False, True, False, False]

    def doc(ents):
        d = Doc(vocab, words=words, sent_starts=starts)
        d.set_ents([spacy.tokens.Span(d, s, e, label=lab) for s, e, lab in ents], default="outside")
        return d

    clean = [doc([(0, 1, "PER"), (2, 3, "PER"), (4, 5, "ORG")])] * 2
    noisy = [doc([(0, 1, "PER")]), doc([(0, 1, "PER"), (2, 3, "PER"), (4, 5, "LOC")])]
    DocBin(docs=clean).to_disk(tmp_path / "clean.spacy")
    DocBin(docs=noisy).to_disk(tmp_path / "noisy.spacy")
    # sentences: (doc 0: missed Tom, noisy), (doc 0: missed Rome, noisy), (doc 1: clean), (doc 1: LOC for ORG)
    report = [{"doc": 0, "start": 0, "end": 4, "loss": 3.0, "rejected": True},
              {"doc": 0, "start": 4, "end": 7, "loss": 0.1, "rejected": False},
              {"doc": 1, "start": 0, "end": 4, "loss": 2.0, "rejected": True},
              {"doc": 1, "start": 4, "end": 7, "loss": None, "rejected": False}]
    (tmp_path / "filter_report.jsonl").write_text("".join(json.dumps(r) + "\n" for r in report))
    summary = metrics.filter_summary(tmp_path / "filter_report.jsonl", tmp_path / "clean.spacy", tmp_path / "noisy.spacy")
    assert summary == {"units": 4, "rejected": 2, "share": 0.5, "noisy": 3, "precision": 0.5, "recall": pytest.approx(1 / 3),
                       "loss_auroc": 0.5}
    assert metrics.filter_summary(tmp_path / "filter_report.jsonl", None, tmp_path / "noisy.spacy") == \
        {"units": 4, "rejected": 2, "share": 0.5}
    results = {"systems": {"nb_filtered_sentmix@noise_distant": {"runs": {"1": {"filter": summary}}}, "nb_uniform": {"runs": {}}}}
    assert render.filter_section(results)[-1] == "| nb_filtered_sentmix@noise_distant | 1 | 4 | 3 | 2 | 50.0% | 33.3% | 0.500 |"
    # the token pass (`--mask-outside-top`): in the kept sentences, doc 0's "won" (clean O) and
    # doc 1's "won" masked; the kept sentences' O tokens inside a clean entity: doc 0's "Rome"
    report[1]["masked_tokens"], report[3]["masked_tokens"] = [5], [5]
    report[0]["masked_tokens"] = report[2]["masked_tokens"] = []
    (tmp_path / "filter_report.jsonl").write_text("".join(json.dumps(r) + "\n" for r in report))
    tokens = metrics.filter_summary(tmp_path / "filter_report.jsonl", tmp_path / "clean.spacy", tmp_path / "noisy.spacy")
    assert tokens == {**summary, "tokens_masked": 2, "token_precision": 0.0, "token_recall": 0.0}
    report[1]["masked_tokens"] = [4, 5]
    (tmp_path / "filter_report.jsonl").write_text("".join(json.dumps(r) + "\n" for r in report))
    tokens = metrics.filter_summary(tmp_path / "filter_report.jsonl", tmp_path / "clean.spacy", tmp_path / "noisy.spacy")
    assert tokens["tokens_masked"] == 3 and tokens["token_precision"] == pytest.approx(1 / 3) and tokens["token_recall"] == 1.0


# -- the report, on synthetic results ------------------------------------------------------


def synthetic_run(system: str, seed: int, f1: float, curve=None) -> dict:
    return {"system": system, "seed": seed, "best_scores": {"ents_f": f1, "ents_p": f1, "ents_r": f1},
            "curve": curve or [[0, 0.0, 0.0], [100, f1 / 100, 10.0]], "steps": 100, "best_step": 100,
            "machine": {"cpus": 2, "platform": "test", "python": "3.11"}, "versions": {"spacy": "3.8"},
            "fingerprint": "x"}


def test_collect_pairs_seeds_and_measures_the_gap(tiny_benchmark):
    spec = bench.load_benchmark(tiny_benchmark)
    scale = spec.scale("tiny")
    values = {"ner_uniform": [90.0, 91.0], "ner_hard": [91.0, 92.5], "ner_cnn": [80.0, 80.0]}
    for name, scores in values.items():
        for seed, f1 in enumerate(scores):
            bench.write_json(bench.result_path(spec.root, "tiny", spec.systems[name], seed), synthetic_run(name, seed, f1))
    # the hard run reaches uniform's best (0.90) at step 50, uniform at 100
    hard0 = synthetic_run("ner_hard", 0, 91.0, curve=[[0, 0.0, 0.0], [50, 0.90, 5.0], [100, 0.91, 10.0]])
    bench.write_json(bench.result_path(spec.root, "tiny", spec.systems["ner_hard"], 0), hard0)
    results = collect.collect(spec, scale)
    hard = results["systems"]["ner_hard"]
    assert hard["comparison"]["baseline"] == "ner_uniform"
    assert hard["comparison"]["difference"]["values"] == [1.0, 1.5]
    assert hard["comparison"]["difference"]["mean"] == 1.25 and hard["comparison"]["difference"]["df"] == 1
    assert abs(hard["comparison"]["difference"]["t"] - 5.0) < 1e-9  # 1.25 / (0.3536 / sqrt(2))
    assert hard["comparison"]["steps_to_baseline_best"] == {
        "seed": 0, "baseline_steps": 100, "steps": 50, "ratio": 0.5, "baseline_seconds": 10, "seconds": 5
    }
    assert results["systems"]["ner_uniform"]["spread"]["values"] == [90.0, 91.0]
    assert "comparison" not in results["systems"]["ner_cnn"]
    # an H200 run's minutes are not compared with a CPU run's
    on_gpu = dict(hard0, machine={"cpus": 16, "gpu": "NVIDIA H200"})
    eff = collect.comparison({0: on_gpu}, {0: synthetic_run("ner_uniform", 0, 90.0)}, {})["steps_to_baseline_best"]
    assert eff["steps"] == 50 and "seconds" not in eff and "baseline_seconds" not in eff
    # gap recovered: baseline 50, reference 80, system 65 -> half
    gap = collect.comparison({0: synthetic_run("a", 0, 65.0)}, {0: synthetic_run("b", 0, 50.0)}, {0: synthetic_run("c", 0, 80.0)})
    assert gap["gap_recovered"] == [0.5]
    text = render.render(json.loads(json.dumps(results)), tiny_benchmark / "results" / "tiny")
    assert "| `rsft_ner`, RSFT `hard` | **91.00** |" in text
    assert "| ner_hard | ner_uniform | +1.25 | 0.35 | +5.00 (1) | +1.00, +1.50 | 50 vs 100 (0.1 min vs 0.2 min) |" in text
    assert "| ner_uniform | 90.50 | 0.71 | 90.00, 91.00 |" in text
    assert (tiny_benchmark / "results" / "tiny" / "figures" / "ner.png").exists()


def test_a_system_that_has_not_run_is_listed_as_such(tiny_benchmark):
    spec = bench.load_benchmark(tiny_benchmark)
    results = json.loads(json.dumps(collect.collect(spec, spec.scale("tiny"))))
    text = render.render(results, tiny_benchmark / "results" / "tiny")
    assert "| spaCy `ner`, CNN tok2vec (anchor) | not run yet |" in text
    assert results["systems"]["ner_hard"]["runs"] == {}


def test_committed_results_render_as_committed():
    """The committed results.json of every scale renders to the committed results.md, and
    every run it lists has a result file: the report is a function of the results."""
    scale_dirs = sorted(p.parent for p in (BENCHMARK / "results").glob("*/results.json"))
    assert {p.name for p in scale_dirs} >= {"full", "quick", "spread"}
    for scale_dir in scale_dirs:
        results = json.loads((scale_dir / "results.json").read_text(encoding="utf8"))
        runs = {n: s["runs"] for n, s in results["systems"].items() if s["runs"]}
        assert runs, f"{scale_dir}: no runs"
        text = render.render(results, scale_dir / "_check")
        shutil.rmtree(scale_dir / "_check", ignore_errors=True)
        assert text == (scale_dir / "results.md").read_text(encoding="utf8"), f"{scale_dir}/results.md is stale"


# -- the weasel round trip -----------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_workflow_round_trip(tiny_benchmark, tiny_bert):
    """ner → speed → collect → render through weasel; a second run reruns nothing."""
    root = tiny_benchmark
    overrides = {"vars.scale": "tiny", "vars.model": tiny_bert}
    for command in ("ner", "speed", "collect", "render"):
        project_run(root, command, overrides=overrides, capture=True)
    results = json.loads((root / "results" / "tiny" / "results.json").read_text())
    assert set(results["systems"]["ner_hard"]["runs"]) == {"0", "1"}
    assert results["systems"]["ner_hard"]["comparison"]["difference"]["df"] == 1
    assert "ner_uniform" in json.loads((root / "results" / "tiny" / "speed.json").read_text())["systems"]
    report = (root / "results" / "tiny" / "results.md").read_text()
    assert "| `rsft_ner`, uniform reader | **" in report
    mtimes = {p: p.stat().st_mtime for p in (root / "results").rglob("*.json")}
    for command in ("ner", "speed", "collect", "render"):
        project_run(root, command, overrides=overrides, capture=True)
    assert {p: p.stat().st_mtime for p in (root / "results").rglob("*.json")} == mtimes


# -- the NoiseBench grid's schedule and selection (runs faked: the runner is tested above) ---


def test_grid_chooses_the_best_variant_then_runs_its_seeds_and_control(tiny_benchmark, monkeypatch, capsys):
    spec = bench.load_benchmark(tiny_benchmark)
    spec.scales["tiny"].systems = None  # every system
    noisebench = tiny_benchmark / "corpus" / "tiny" / "noisebench"
    noisebench.mkdir(parents=True)
    for name in ["clean", "dev"] + [f"{n}{o}" for n in ("noise_expert", "noise_crowdbest", "noise_distant") for o in ("", ".oracle")]:
        DocBin(docs=make_docs(2)).to_disk(noisebench / f"{name}.spacy")
    monkeypatch.setattr(noisebench_grid, "load_benchmark", lambda: spec)
    f1 = {"nb_denoise_out": 0.70, "nb_denoise_span": 0.60, "nb_denoise_sent": 0.65, "nb_denoise_split": 0.62}
    ran = []

    def fake_run(bench_, plan, force=False, env=None, quiet=False):
        name = plan.system.name.split("@")[0]
        ran.append((plan.system.name, plan.seed))
        result = {"best_scores": {"ents_f": f1.get(name, 0.5)}, "fingerprint": plan.fingerprint()}
        bench.write_json(bench.result_path(spec.root, "tiny", plan.system, plan.seed), result)
        return True

    monkeypatch.setattr(noisebench_grid, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["noisebench_grid.py", "--scale", "tiny", "--jobs", "3", "--model", "m"])
    noisebench_grid.main()
    out = capsys.readouterr().out
    assert "chosen variant: nb_denoise_out" in out
    assert len(ran) == len(set(ran)) == len(noisebench_grid.stage_one()) + len(noisebench_grid.stage_two("x", set()))
    assert ("nb_random_out@noise_distant", 2) in ran and ("nb_denoise_out@noise_crowdbest", 1) in ran
    assert not any(name.startswith("nb_random_s") for name, _ in ran)  # no other variant's control
    # the variants ran before their selection needed them; a second pass runs nothing new
    assert all(n.startswith("nb_denoise") for n, _ in ran[:3])


def conll_text(docs) -> str:
    """Docs as NoiseBench's 4-column CoNLL (-DOCSTART- per article, a blank line per sentence)."""
    lines = []
    for doc in docs:
        lines += ["-DOCSTART- -X- -X- O", ""]
        for sent in doc.sents:
            for t in sent:
                tag = "O" if t.ent_iob_ == "O" else f"{t.ent_iob_}-{t.ent_type_}"
                lines.append(f"{t.text} NNP B-NP {tag}")
            lines.append("")
    return "\n".join(lines) + "\n"


def test_grid_runs_a_users_label_set_as_one_more_variant(tiny_benchmark, monkeypatch, capsys):
    noisebench = tiny_benchmark / "corpus" / "tiny" / "noisebench"
    noisebench.mkdir(parents=True)
    clean = make_docs(3)
    DocBin(docs=clean).to_disk(noisebench / "clean.spacy")
    for name in ["dev"] + [f"{n}{o}" for n in ("noise_expert", "noise_crowdbest", "noise_distant") for o in ("", ".oracle")]:
        DocBin(docs=make_docs(2)).to_disk(noisebench / f"{name}.spacy")
    own = [doc.copy() for doc in clean]
    own[0].ents = [e for e in own[0].ents if e.label_ != "LOC"]  # these labels miss Oslo once
    (tiny_benchmark / "mine.train.txt").write_text(conll_text(own), encoding="utf8")

    def load(root=None, label_sets=()):
        spec = bench.load_benchmark(tiny_benchmark, label_sets)
        spec.scales["tiny"].systems = None
        return spec

    ran = []

    def fake_run(bench_, plan, force=False, env=None, quiet=False):
        ran.append((plan.system.name, plan.seed))
        result = {"best_scores": {"ents_f": 0.5}, "fingerprint": plan.fingerprint()}
        bench.write_json(bench.result_path(tiny_benchmark, "tiny", plan.system, plan.seed), result)
        return True

    spec = load()
    for variant, score in (("nb_denoise_out", 0.6), ("nb_denoise_sentmax", 0.7)):  # stage 1 has run
        for label in ("noise_crowdbest", "noise_distant"):
            plan = bench.make_plan(spec, spec.systems[f"{variant}@{label}"], spec.scales["tiny"], 0, "m")
            result = {"best_scores": {"ents_f": score}, "fingerprint": plan.fingerprint()}
            bench.write_json(bench.result_path(spec.root, "tiny", plan.system, 0), result)
    monkeypatch.setattr(noisebench_grid, "load_benchmark", load)
    monkeypatch.setattr(noisebench_grid, "run", fake_run)
    argv = ["noisebench_grid.py", "--scale", "tiny", "--model", "m", "--noisy-train", str(tiny_benchmark / "mine.train.txt")]
    monkeypatch.setattr(sys, "argv", argv)
    noisebench_grid.main()
    assert "chosen variant: nb_denoise_sentmax" in capsys.readouterr().out
    assert sorted(ran) == sorted(
        [(n, s) for s in (0, 1, 2) for n in ("nb_uniform@mine", "nb_denoise_sentmax@mine", "nb_random_sentmax@mine")]
        + [("nb_oracle@mine", 0)])
    report = json.loads((noisebench / "mine.json").read_text())
    assert report["sentences_differing"] == 1
    # from its results on, every script knows the label set; the report lists its runs only
    spec = load()
    assert "nb_uniform@mine" in spec.systems and spec.own_label_sets == ["mine"]
    systems = collect.collect(spec, spec.scales["tiny"])["systems"]
    assert {n for n in systems if n.endswith("@mine")} == {n for n, _ in ran}
    # NoiseBench's own label sets cannot be replaced
    (tiny_benchmark / "noise_distant.train.txt").write_text(conll_text(own), encoding="utf8")
    monkeypatch.setattr(sys, "argv", argv[:-1] + [str(tiny_benchmark / "noise_distant.train.txt")])
    with pytest.raises(SystemExit, match="Rename the file"):
        noisebench_grid.main()
    # a label set over other tokens is refused, naming the file
    other = [doc.copy() for doc in clean[:2]]
    (tiny_benchmark / "other.train.txt").write_text(conll_text(other), encoding="utf8")
    monkeypatch.setattr(sys, "argv", argv[:-1] + [str(tiny_benchmark / "other.train.txt")])
    with pytest.raises(SystemExit, match="other.train.txt does not line up"):
        noisebench_grid.main()


def test_noisebench_conversion_writes_every_label_set_and_its_oracles(tmp_path):
    folder, out = tmp_path / "noisebench", tmp_path / "out"
    folder.mkdir()
    clean = make_docs(3)
    noisy = [doc.copy() for doc in clean]
    noisy[1].ents = []  # every entity of the second article missed (all in its first sentence)
    # the first article: Oslo labelled ORG (a wrong type), Euro's MISC kept
    noisy[0].ents = [e if e.label_ != "LOC" else Span(noisy[0], e.start, e.end, "ORG") for e in noisy[0].ents]
    (folder / "clean.train.txt").write_text(conll_text(clean), encoding="utf8")
    (folder / "clean.dev.txt").write_text(conll_text(make_docs(1)), encoding="utf8")
    (folder / "noise_x.train.txt").write_text(conll_text(noisy), encoding="utf8")
    bench_data.noisebench(folder, out)
    oracles = ["noise_x.oracle.spacy", "noise_x.oracle_missing.spacy", "noise_x.oracle_rest.spacy", "noise_x.oracle_spans.spacy"]
    assert sorted(p.name for p in out.glob("*.spacy")) == ["clean.spacy", "dev.spacy", *oracles, "noise_x.spacy"]
    report = json.loads((out / "noise_x.json").read_text())
    assert (report["sentences"], report["sentences_differing"]) == (6, 2)
    assert report["sentences_differing_by_kind"] == {"missing": 1, "type": 1}
    assert (report["sentences_masked_missing"], report["sentences_masked_rest"], report["sentences_masked_spans"]) == (1, 1, 1)

    def masked_sentences(name):
        docs = DocBin().from_disk(out / name).get_docs(spacy.blank("en").vocab)
        return [[sent.start for sent in doc.sents if all(t.ent_iob == 0 for t in sent)] for doc in docs]

    # the full oracle masks both mislabeled sentences, each partial one only its kinds (the
    # span oracle keeps the sentence that differs only in a type); the clean sentences keep
    # their labels ("O" included) in all of them
    assert masked_sentences(oracles[0]) == [[0], [0], []]
    assert masked_sentences(oracles[1]) == [[], [0], []]
    assert masked_sentences(oracles[2]) == [[0], [], []]
    assert masked_sentences(oracles[3]) == [[], [0], []]
    missing_only = list(DocBin().from_disk(out / oracles[1]).get_docs(spacy.blank("en").vocab))
    assert [(e.text, e.label_) for e in missing_only[0].ents] == [("Anna Berg", "PER"), ("Tom", "PER"), ("Oslo", "ORG"), ("Euro", "MISC")]


def test_grid_takes_the_matched_control_and_runs_it_after_its_denoise_run(monkeypatch):
    from types import SimpleNamespace

    files = {"nb_denoise_sentmix", "nb_random_sentmix", "nb_matched_sentmix", "nb_denoise_out", "nb_random_out"}
    assert noisebench_grid.control_of("nb_denoise_sentmix", files) == "nb_matched_sentmix"
    assert noisebench_grid.control_of("nb_denoise_out", files) == "nb_random_out"
    assert ("nb_matched_sentmix", "noise_distant", 2) in noisebench_grid.stage_two("nb_denoise_sentmix", files)
    # a control queued before its denoise run waits for it instead of being skipped
    ran = []
    control = SimpleNamespace(system=SimpleNamespace(name="nb_matched_sentmix@noise_distant"), seed=1)
    denoise = SimpleNamespace(system=SimpleNamespace(name="nb_denoise_sentmix@noise_distant"), seed=1)
    monkeypatch.setattr(noisebench_grid, "missing_run_outputs", lambda root, plan: [] if plan is denoise or denoise in ran else ["stats"])
    monkeypatch.setattr(noisebench_grid, "run", lambda bench_, plan, env=None, quiet=False: ran.append(plan) or True)
    scheduler = noisebench_grid.Scheduler(SimpleNamespace(root=Path(".")), jobs=1, gpu_id=-1, end=float("inf"), first_guess=1.0)
    scheduler.add([control, denoise])
    scheduler.start()
    scheduler.close()
    assert ran == [denoise, control] and not scheduler.failed


def test_grid_selection_ignores_variants_with_a_missing_run():
    chosen = noisebench_grid.choose_variant({"a": [0.9, None], "b": [0.5, 0.6], "c": [0.6, 0.6]})
    assert chosen == "c"
    with pytest.raises(SystemExit):
        noisebench_grid.choose_variant({"a": [None, None]})


def test_grid_on_a_scale_that_lists_its_systems_runs_just_those(tiny_benchmark, monkeypatch, capsys):
    spec = bench.load_benchmark(tiny_benchmark)
    spec.scales["tiny"].systems = ["nb_clean", "ner_cnn"]
    noisebench = tiny_benchmark / "corpus" / "tiny" / "noisebench"
    noisebench.mkdir(parents=True)
    for name in ("clean", "dev"):
        DocBin(docs=make_docs(2)).to_disk(noisebench / f"{name}.spacy")
    ran = []
    monkeypatch.setattr(noisebench_grid, "load_benchmark", lambda: spec)
    monkeypatch.setattr(noisebench_grid, "run", lambda b, plan, force=False, env=None, quiet=False: ran.append((plan.system.name, plan.seed)) or True)
    monkeypatch.setattr(sys, "argv", ["noisebench_grid.py", "--scale", "tiny", "--model", "m"])
    noisebench_grid.main()
    assert ran == [("nb_clean", 0), ("nb_clean", 1)] and "chosen variant" not in capsys.readouterr().out


def test_rejection_whatif_replays_a_runs_losses_against_the_clean_labels(tmp_path, capsys):
    """Sentences whose noisy labels miss an entity get the higher losses: the replay must find
    them (AUROC 1, the top k exactly the noisy ones) and count them from the clean labels."""
    import rejection_whatif

    clean = make_docs(4)
    noisy = []
    for i, doc in enumerate(make_docs(4)):
        if i % 2:  # odd docs lose their first sentence's entities: 2 noisy sentences of 8
            doc.ents = [e for e in doc.ents if e.start >= 7]
        noisy.append(doc)
    DocBin(docs=clean).to_disk(tmp_path / "clean.spacy")
    DocBin(docs=noisy).to_disk(tmp_path / "noisy.spacy")
    units = {"unit": "sentence", "context": "document", "doc": [0, 0, 1, 1, 2, 2, 3, 3],
             "start": [0, 7] * 4, "end": [7, 11] * 4, "entity": [0] * 8}
    srsly.write_json(tmp_path / "sampler_stats.units.json", units)
    losses = [0.1, 0.2, 3.0, 0.1, 0.3, 0.2, 2.5, 0.1]  # units 2 and 6 are the noisy ones
    lines = [{"epoch": 0, "proposed": 8, "accepted": 8, "losses": None},
             {"epoch": 1, "proposed": 8, "accepted": 6, "losses": losses}]
    srsly.write_jsonl(tmp_path / "sampler_stats.jsonl", lines)
    rejection_whatif.main(tmp_path, tmp_path / "noisy.spacy", tmp_path / "clean.spacy", ks="2,4")
    out = capsys.readouterr().out
    assert "8 units, 2 noisy (0.250)" in out
    assert "epoch 1: rejected 2; AUROC epoch 1.000" in out
    assert "top 2: P 1.00 R 1.00, top 4: P 0.50 R 1.00" in out
    assert "epoch 0" not in out  # nothing was scored in warm-up
    # by kind: both noisy sentences only lost entities, and the top 2 are exactly those
    rejection_whatif.main(tmp_path, tmp_path / "noisy.spacy", tmp_path / "clean.spacy", ks="1,2", by_kind=True)
    out = capsys.readouterr().out
    assert "noisy units by kind: missing 2" in out
    assert "top 1: P 1.00 R 0.50 (missing 0.50), top 2: P 1.00 R 1.00 (missing 1.00)" in out


def test_relabel_quality_scores_labels_and_predictions_in_rejected_sentences(tmp_path):
    """In the sentences the run rejected, the noisy labels (which miss Tom) and a model's
    entities (a ruler that finds Anna Berg and Tom but calls Oslo an ORG) are scored against
    the clean labels, entity by entity, apart from the accepted sentences."""
    import relabel_quality

    clean = make_docs(2)
    noisy = []
    for doc in make_docs(2):
        doc.ents = [e for e in doc.ents if e.text != "Tom"]
        noisy.append(doc)
    DocBin(docs=clean).to_disk(tmp_path / "clean.spacy")
    DocBin(docs=noisy).to_disk(tmp_path / "noisy.spacy")
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PER", "pattern": "Anna Berg"}, {"label": "PER", "pattern": "Tom"},
                        {"label": "ORG", "pattern": "Oslo"}])
    nlp.to_disk(tmp_path / "model-last")
    units = {"unit": "sentence", "context": "document", "doc": [0, 0, 1, 1], "start": [0, 7] * 2,
             "end": [7, 11] * 2, "entity": [0] * 4}
    srsly.write_json(tmp_path / "sampler_stats.units.json", units)
    lines = [{"epoch": 0, "warmup": True, "accepted_indices": [0, 1, 2, 3]},
             {"epoch": 1, "warmup": False, "accepted_indices": [1, 3]}]  # the first sentences rejected
    srsly.write_jsonl(tmp_path / "sampler_stats.jsonl", lines)
    relabel_quality.main(tmp_path, tmp_path / "noisy.spacy", tmp_path / "clean.spacy", model="model-last",
                         epoch=None, output=tmp_path / "scores.json")
    scores = srsly.read_json(tmp_path / "scores.json")
    rejected = scores["rejected"]
    assert scores["epoch"] == 1 and rejected["sentences"] == 2 and rejected["clean_entities"] == 6
    assert rejected["noisy_labels"] == pytest.approx({"entities": 4, "p": 1.0, "r": 0.6667, "f": 0.8})
    assert rejected["model"] == pytest.approx({"entities": 6, "p": 0.6667, "r": 0.6667, "f": 0.6667})
    assert scores["accepted"]["sentences"] == 2 and scores["accepted"]["model"]["entities"] == 0


def test_pooling_auroc_classifies_noise_and_pools_token_losses():
    """Doc 0 is clean; doc 1 misses Tom (a "missing" sentence, its loss on the outside token
    Tom); doc 2 calls Oslo an ORG (a "type" sentence, its loss on the entity token Oslo, which
    only pooling over entity tokens or all tokens can see)."""
    import numpy
    from spacy.tokens import Span

    import pooling_auroc

    clean = make_docs(3)
    noisy = make_docs(3)
    noisy[1].ents = [e for e in noisy[1].ents if e.text != "Tom"]
    noisy[2].ents = [Span(noisy[2], 5, 6, label="ORG") if e.text == "Oslo" else e for e in noisy[2].ents]
    losses = [numpy.full((11,), 0.1) for _ in range(3)]
    losses[1][3] = 2.0  # Tom, outside the noisy labels
    losses[2][5] = 3.0  # Oslo, inside them
    flags, kinds, pools = pooling_auroc.pooled_sentences(clean, noisy, losses)
    assert flags.tolist() == [False, False, True, False, True, False]
    assert dict(kinds) == {"missing": 1, "type": 1}
    assert pools["max_outside"][2] == 2.0 and pools["max_outside"][4] == pytest.approx(0.1)
    assert pools["max_entity"][4] == 3.0 and pools["max_all"][2:5] == [2.0, pytest.approx(0.1), 3.0]
    assert pools["sum_all"][2] == pytest.approx(2.6)


def test_type_signal_sees_a_wrong_type_and_not_a_hard_entity():
    """Tom (a correct PER the model doubts is an entity at all) has a high tag loss and a low
    type loss; Oslo labelled ORG where the model is sure of LOC has both high. Anna Berg's
    two tokens are pooled by their mean, and the sentence takes its largest entity."""
    import numpy
    from spacy.tokens import Span

    import type_signal
    from spacy_rsft.pipeline.biluo import tag_names

    tags = tag_names(["LOC", "MISC", "ORG", "PER"])
    doc = make_docs(2)[1]
    doc.ents = [Span(doc, 5, 6, label="ORG") if e.text == "Oslo" else e for e in doc.ents]
    probs = numpy.full((len(doc), len(tags)), 0.01)
    probs[:, tags.index("O")] = 0.9
    probs[0, tags.index("B-PER")] = probs[1, tags.index("L-PER")] = 0.9
    probs[3, tags.index("O")], probs[3, tags.index("U-PER")] = 0.85, 0.1  # hard, right type
    probs[5, tags.index("U-LOC")], probs[5, tags.index("U-ORG")] = 0.8, 0.05  # wrong type
    log_probs = numpy.log(probs / probs.sum(1, keepdims=True))
    tom = type_signal.sentence_signals(log_probs, doc, 3, 4, tags)  # a window holding only Tom
    oslo = type_signal.sentence_signals(log_probs, doc, 5, 6, tags)
    assert tom["entity_loss"] > 2.0 and tom["type_loss"] < 0.5
    assert oslo["entity_loss"] > 2.0 and oslo["type_loss"] > 2.0
    sentence = type_signal.sentence_signals(log_probs, doc, 0, 7, tags)
    assert sentence["type_loss"] == pytest.approx(oslo["type_loss"])
    assert type_signal.sentence_signals(log_probs, doc, 7, 11, tags) == {"entity_loss": 0.0, "type_loss": 0.0}


def test_type_confusion_tells_a_convention_from_slips():
    """Oslo is typed ORG in 3 of 4 docs (a convention: its string is mostly mistyped) and Tom
    PER->ORG once in 4 (a slip); Anna Berg's span is cut in doc 0 (not a same-span entity).
    The type posterior of a span is normalised over the types."""
    import numpy
    from spacy.tokens import Span

    import type_confusion
    from spacy_rsft.pipeline.biluo import tag_names

    clean, noisy = make_docs(4), make_docs(4)
    for i, doc in enumerate(noisy):
        ents = [Span(doc, 5, 6, label="ORG") if e.text == "Oslo" and i < 3 else e for e in doc.ents]
        ents = [Span(doc, 3, 4, label="ORG") if e.text == "Tom" and i == 0 else e for e in ents]
        doc.ents = [Span(doc, 0, 1, label="PER") if e.text == "Anna Berg" and i == 0 else e for e in ents]
    result = type_confusion.label_confusion(noisy, clean)
    assert result["same_span_entities"] == 4 * 3 + 2 - 1 and result["mistyped"] == 4
    assert result["mistyped_by_pair"] == {"LOC->ORG": 3, "PER->ORG": 1}
    assert result["mistyped_where_the_string_is_mostly_mistyped"] == 3
    assert result["top_strings"][0] == {"text": "Oslo", "clean": "LOC", "noisy": {"ORG": 3, "LOC": 1}, "mistyped": 3}
    tags = tag_names(["LOC", "MISC", "ORG", "PER"])
    log_probs = numpy.log(numpy.full((2, len(tags)), 0.01))
    log_probs[0, tags.index("B-ORG")] = log_probs[1, tags.index("L-ORG")] = numpy.log(0.5)
    types = ["LOC", "MISC", "ORG", "PER"]
    posterior = type_confusion.type_posterior(log_probs, types, {t: i for i, t in enumerate(tags)})
    assert posterior.sum() == pytest.approx(1.0) and posterior.argmax() == types.index("ORG")
    assert posterior[types.index("ORG")] == pytest.approx(2500 / (2500 + 3))


def test_label_signal_scores_each_label_on_the_outside_tokens_only():
    """label_signal.py: per label, the largest probability of its tags over the tokens outside
    the labelled entities (a labelled entity's own probability does not count); the labels of
    clean entities the noisy labels miss; AUROC and top-k counts of a score."""
    import numpy
    from spacy.tokens import Span

    import label_signal
    from spacy_rsft.pipeline.biluo import tag_names

    vocab = spacy.blank("en").vocab
    words = ["Anna", "saw", "Euro", "2024", "in", "Oslo"]
    clean = Doc(vocab, words=words)
    clean.set_ents([Span(clean, 0, 1, label="PER"), Span(clean, 2, 4, label="MISC"), Span(clean, 5, 6, label="LOC")])
    noisy = Doc(vocab, words=words)  # misses the MISC, keeps Anna, mistypes Oslo
    noisy.set_ents([Span(noisy, 0, 1, label="PER"), Span(noisy, 5, 6, label="ORG")])
    tags = tag_names(["LOC", "MISC", "ORG", "PER"])
    probs = numpy.full((len(words), len(tags)), 0.01)
    probs[0, tags.index("U-PER")] = 0.9  # inside a labelled entity: not counted
    probs[2, tags.index("B-MISC")], probs[3, tags.index("L-MISC")] = 0.3, 0.2
    probs[2, tags.index("U-MISC")] = 0.1
    scores = label_signal.label_scores(numpy.log(probs), noisy, 0, len(words), tags, ["LOC", "MISC", "ORG", "PER"])
    assert scores["MISC"] == pytest.approx(0.3 + 0.1 + 0.01 + 0.01)  # B, U, I and L of token 2
    assert scores["PER"] == pytest.approx(0.04)
    assert label_signal.missed_labels(clean, noisy, 0, len(words)) == {"MISC"}
    row = label_signal.judge([0.9, 0.1, 0.5, 0.2], [True, False, False, False], [True, False, True, False])
    assert row["missed"] == 1 and row["auroc_missed"] == 1.0 and row["auroc_noisy"] == 1.0
    assert row["top_k_missed"] == [1, 1, 1] and row["top_k_noisy"] == [2, 2, 2]


def test_outside_whatif_judges_a_token_pass_on_the_kept_sentences_o_tokens(tmp_path, monkeypatch, capsys):
    """outside_whatif.py: only the "O" tokens of the sentences the filter kept are candidates;
    a token counts as found when the clean labels put it in an entity; an absolute bar on
    1 - p(O) and a per-label rank by p(label), each with precision, recall per clean label and
    the sentences touched; the labels the kept sentences still carry."""
    import json

    import numpy
    import srsly
    from spacy.tokens import Span

    import outside_whatif

    vocab = spacy.blank("en").vocab
    words = ["Anna", "saw", "Euro", "2024", ".", "Tom", "left", "Oslo", "."]
    starts = [True, False, False, False, False, True, False, False, False]
    clean = Doc(vocab, words=words, sent_starts=starts)
    clean.set_ents([Span(clean, 0, 1, label="PER"), Span(clean, 2, 4, label="MISC"), Span(clean, 5, 6, label="PER"),
                    Span(clean, 7, 8, label="LOC")], default="outside")
    noisy = Doc(vocab, words=words, sent_starts=starts)  # misses the MISC and Oslo
    noisy.set_ents([Span(noisy, 0, 1, label="PER"), Span(noisy, 5, 6, label="PER")], default="outside")
    DocBin(docs=[noisy]).to_disk(tmp_path / "noisy.spacy")
    DocBin(docs=[clean]).to_disk(tmp_path / "clean.spacy")
    # the second sentence was rejected: its missed "Oslo" is not the token pass's to find
    srsly.write_jsonl(tmp_path / "report.jsonl", [{"doc": 0, "start": 0, "end": 5, "rejected": False},
                                                  {"doc": 0, "start": 5, "end": 9, "rejected": True}])
    labels = ["LOC", "MISC", "PER"]
    probs = numpy.zeros((len(words), len(labels)))
    # "Anna" is labelled: never a candidate, however likely an entity
    for t, (label, p) in enumerate([("PER", 0.99), ("LOC", 0.6), ("MISC", 0.3), ("MISC", 0.05), ("LOC", 0.1),
                                    ("PER", 0.99), ("PER", 0.9), ("LOC", 0.9), ("LOC", 0.9)]):
        probs[t, labels.index(label)] = p
    (tmp_path / "folds").mkdir()
    srsly.write_json(tmp_path / "folds" / "folds.json", {"folds": [[0]]})
    monkeypatch.setattr(outside_whatif, "fold_label_probs", lambda template, folds, docs: ([probs], labels))
    outside_whatif.main(tmp_path / "report.jsonl", tmp_path / "noisy.spacy", tmp_path / "clean.spacy",
                        tmp_path / "folds", thresholds="0.5,0.2", ks="1,2", output=tmp_path / "out.json")
    out = json.loads((tmp_path / "out.json").read_text())
    # candidates: saw, Euro, 2024, "." (4); Euro and 2024 are in the missed MISC
    assert out["outside_tokens_kept"] == 4 and out["missed_entity_tokens"] == 2 and out["base_rate"] == 0.5
    assert out["missed_by_label"] == {"MISC": 2} and out["labelled_by_label"] == {"LOC": 0, "MISC": 0, "PER": 1}
    at_half, at_fifth = out["thresholds"]
    assert at_half == {"p": 0.5, "chosen": 1, "sentences": 1, "found": 0, "precision": 0.0, "recall": 0.0,
                       "recall_by_label": {"MISC": 0.0}}
    assert at_fifth["chosen"] == 2 and at_fifth["found"] == 1 and at_fifth["recall_by_label"] == {"MISC": 0.5}
    # by p(MISC): Euro first, then 2024; by p(LOC): saw, then "."
    assert [(r["k"], r["found_label"], r["precision"]) for r in out["per_label"]["MISC"]] == [(1, 1, 1.0), (2, 2, 1.0)]
    assert [r["found"] for r in out["per_label"]["LOC"]] == [0, 0]
    assert "top by p(MISC): 1: 1 missed MISC, 1 missed any" in capsys.readouterr().out


def test_el_errors_puts_each_in_kb_mention_in_one_class():
    """One mention per class: linked right, NIL for a right first rank, wrong where the prior
    was right, wrong where the prior was wrong too, gold not a candidate; NIL gold skipped."""
    from types import SimpleNamespace

    import el_errors
    from spacy_rsft.annotations import NIL

    nlp = spacy.blank("en")
    words = ["Paris", "Rome", "Oslo", "Bern", "Nice", "Kiev"]
    ref = Doc(nlp.vocab, words=words)
    golds = ["Q1", "Q2", "Q3", "Q4", "Q5", NIL]
    ref.ents = [ref.char_span(ref[i].idx, ref[i].idx + len(ref[i]), label="LOC", kb_id=g) for i, g in enumerate(golds)]
    doc = Doc(nlp.vocab, words=words)
    # (linked id, first-ranked id, candidates as (id, prior))
    rows = [("Q1", "Q1", [("Q1", 0.9), ("X", 0.1)]),
            (NIL, "Q2", [("Q2", 0.9), ("X", 0.1)]),
            ("X", "X", [("Q3", 0.9), ("X", 0.1)]),
            ("X", "X", [("Q4", 0.1), ("X", 0.9)]),
            ("X", "X", [("X", 1.0)]),
            ("X", "X", [("X", 1.0)])]
    doc.ents = [doc.char_span(doc[i].idx, doc[i].idx + len(doc[i]), label="LOC", kb_id=row[0]) for i, row in enumerate(rows)]
    for ent, (_, first, _) in zip(doc.ents, rows):
        ent._.kb_candidates = [(first, 0.8)]
    linker = SimpleNamespace(_doc_candidates=lambda ents: [
        [SimpleNamespace(entity=e, prior=p) for e, p in row[2]] for row in rows[: len(ents)]],
        entity_table=SimpleNamespace(types={"Q3": "GPE", "Q4": "GPE", "X": "ORG"}))
    result = el_errors.classify(linker, [ref], [doc], n_examples=5)
    assert result["counts"] == {"in_kb": 5, "ranked_first_linked": 1, "ranked_first_predicted_nil": 1,
                                "prior_right_model_wrong": 1, "prior_and_model_wrong": 1, "gold_not_a_candidate": 1}
    assert result["overrides"] == [["Oslo", "LOC", "Q3", "X"]]
    assert result["wrong_by_label"] == {"prior_and_model_wrong LOC": 1, "prior_right_model_wrong LOC": 1}
    assert result["wrong_by_types"] == {"GPE<ORG": 2}  # the two wrong ranks: a place below an ORG


def write_tsv(path, header, rows):
    path.write_text("\n".join("\t".join(map(str, row)) for row in [header] + rows) + "\n", encoding="utf8")


def test_aida_prepare_joins_gold_and_kb_on_the_page_not_the_title(tmp_path):
    """The AIDA gold names a page by its old title; the candidate pages by the new one, and
    the old title can be another page's title now. The gold, the train counts and the
    candidates must all name a page by the KB's title of its page id."""
    import aida_prepare

    aida = tmp_path / "data" / "aida"
    aida.mkdir(parents=True)
    # page 1 was "Florida Marlins", page 2 was "Preston" (the town), and page 3 is now "Preston"
    write_tsv(aida / "candidate_pages.tsv", ["page_id", "wiki_title", "in_links", "out_links", "predicted_type", "freebase_popularity"],
              [[1, "Miami_Marlins", 50, 1, "ORG", 1], [2, "Preston,_Lancashire", 10, 1, "GPE", 1], [3, "Preston", 90, 1, "UNK", 1]])
    write_tsv(aida / "aida_mention_candidates.tsv", ["doc", "mention", "gold_title", "candidate_page_ids"],
              [[1, "Florida", "Florida_Marlins", "1"], [1, "Preston", "Preston", "3;2"], [2, "Preston", "Preston", "3;2"]])
    write_tsv(aida / "aida_train_alias_counts.tsv", ["mention", "wiki_title", "count"],
              [["Florida", "Florida Marlins", 1], ["Preston", "Preston", 1]])
    def doc(doc_id, split, gold):
        mentions = [{"start": 0, "end": 1, "text": text, "ner": "LOC", "wiki_title": title, "wiki_id": page}
                    for text, title, page in gold]
        return {"doc_id": doc_id, "split": split, "tokens": [m["text"] for m in mentions], "sentences": [[0, len(mentions)]], "mentions": mentions}
    train = [doc("1 X", "train", [("Florida", "Florida Marlins", 1), ("Preston", "Preston", 2)])]
    testa = [doc("2testa Y", "testa", [("Preston", "Preston", 2)])]
    for name, docs in [("train", train), ("testa", testa)]:
        (aida / f"aida_conll_yago_{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf8")
    out = tmp_path / "inputs"
    aida_prepare.main(str(tmp_path / "data"), str(out))

    renamed = [json.loads(line) for line in (out / "aida_train.jsonl").read_text(encoding="utf8").splitlines()]
    assert [(m["wiki_title"], m["aida_title"]) for m in renamed[0]["mentions"]] == [
        ("Miami Marlins", "Florida Marlins"), ("Preston, Lancashire", "Preston")]
    testa_out = json.loads((out / "aida_testa.jsonl").read_text(encoding="utf8"))
    assert testa_out["mentions"][0]["wiki_title"] == "Preston, Lancashire"
    aliases = {(row[0], row[1]): float(row[2]) for row in (line.split("\t") for line in
               (out / "aliases.tsv").read_text(encoding="utf8").splitlines()[1:])}
    # the train count goes to the town, not to the page that took its old title
    assert aliases[("Preston", "Preston, Lancashire")] > 0.5 > aliases[("Preston", "Preston")]
    assert aliases[("Florida", "Miami Marlins")] == 1.0
    # the convert step keeps the KB's title as each gold kb_id
    from spacy_rsft.cli.convert import convert

    convert(out / "aida_testa.jsonl", tmp_path / "testa.spacy", "aida")
    gold = next(DocBin().from_disk(tmp_path / "testa.spacy").get_docs(spacy.blank("en").vocab))
    assert [e.kb_id_ for e in gold.ents] == ["Preston, Lancashire"]


def test_footprint_measures_a_folder_and_a_fresh_processs_own_peak(tmp_path):
    import footprint

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 2**20)
    (tmp_path / "sub" / "b.bin").write_bytes(b"x" * 2**19)
    assert footprint.folder_mb(tmp_path) == 1.5
    # a child reports its own peak, not ours: allocate 300 MB here, then ask a new program
    ballast = b"x" * (300 * 2**20)  # touched, so resident
    code = "import footprint; print(footprint.peak_rss_mb())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=BENCHMARK / "scripts")
    assert 0 < int(child.stdout.strip().splitlines()[-1]) < footprint.peak_rss_mb()
    del ballast


def test_filter_whatif_judges_a_filter_report_by_kind_of_noise(tmp_path, capsys):
    """filter_whatif.py: the report's own decision and other top-k cuts, against the clean
    labels, per kind of noise (a missed entity, a wrong type)."""
    import filter_whatif

    vocab = spacy.blank("en").vocab
    words = ["Anna", "visited", "Oslo", ".", "Tom", "left", "Rome", "."]
    starts = [True, False, False, False, True, False, False, False]
    clean = Doc(vocab, words=words, sent_starts=starts)
    clean.set_ents([Span(clean, 0, 1, label="PER"), Span(clean, 6, 7, label="LOC")], default="outside")
    noisy = Doc(vocab, words=words, sent_starts=starts)  # sentence 0 misses Anna, sentence 1 mistypes Rome
    noisy.set_ents([Span(noisy, 6, 7, label="ORG")], default="outside")
    DocBin(docs=[clean, clean]).to_disk(tmp_path / "clean.spacy")
    DocBin(docs=[noisy, clean]).to_disk(tmp_path / "noisy.spacy")
    report = [{"doc": 0, "start": 0, "end": 4, "loss": 3.0, "rejected": True},
              {"doc": 0, "start": 4, "end": 8, "loss": 0.5, "rejected": False},
              {"doc": 1, "start": 0, "end": 4, "loss": 1.0, "rejected": False},
              {"doc": 1, "start": 4, "end": 8, "loss": None, "rejected": False}]
    (tmp_path / "report.jsonl").write_text("".join(json.dumps(r) + "\n" for r in report))
    filter_whatif.main(tmp_path / "report.jsonl", tmp_path / "noisy.spacy", tmp_path / "clean.spacy", ks="2",
                       output=tmp_path / "out.json")
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["noisy"] == 2 and out["noisy_by_kind"] == {"missing": 1, "type": 1} and out["rejected"] == 1
    own, top2 = out["top_k"]
    assert own == {"k": 1, "precision": 1.0, "recall": 0.5, "recall_missing": 1.0, "recall_type": 0.0}
    # the second-highest loss is a clean sentence; the mistyped one ranks below it
    assert top2["precision"] == 0.5 and top2["recall_type"] == 0.0
    assert out["loss_auroc"] == pytest.approx(0.5)  # the unscored sentence is left out
    # Anna's sentence was masked; the mistyped Rome has a labelled span, so nothing is missed there
    assert out["missed_entities"] == {"masked": {"PER": 1}, "kept": {}}
    assert "top     1: precision 1.000 recall 0.500" in capsys.readouterr().out


def test_reference_types_asks_another_pipeline_about_each_labelled_span(tmp_path, capsys):
    """reference_types.py: each noisy span is correct, a wrong type (the clean labels have the
    span with another type) or a wrong span; the reference pipeline, read on the same tokens,
    agrees, disagrees through the OntoNotes-to-CoNLL map, or has no span with those bounds."""
    import json

    import reference_types

    vocab = spacy.blank("en").vocab
    words = ["Ajax", "beat", "Oslo", "in", "Paris", ".", "Lazio", "and", "Tom", "won", "."]

    def labelled(ents):
        doc = Doc(vocab, words=words)
        doc.set_ents([Span(doc, start, start + 1, label=label) for start, label in ents])
        return doc

    clean = labelled([(0, "ORG"), (2, "ORG"), (4, "LOC"), (6, "ORG"), (8, "PER")])
    noisy = labelled([(0, "ORG"), (1, "MISC"), (2, "LOC"), (6, "LOC"), (8, "PER")])
    for path, doc in (("noisy", noisy), ("clean", clean)):
        DocBin(docs=[doc]).to_disk(tmp_path / f"{path}.spacy")
    reference = spacy.blank("en")
    ruler = reference.add_pipe("entity_ruler", name="ner")
    ruler.add_patterns([{"label": "ORG", "pattern": "Ajax"}, {"label": "GPE", "pattern": "Oslo"},
                        {"label": "ORG", "pattern": "Lazio"}, {"label": "ORG", "pattern": "Tom"},
                        {"label": "DATE", "pattern": "Paris"}])
    reference.to_disk(tmp_path / "reference")

    reference_types.main(tmp_path / "noisy.spacy", tmp_path / "clean.spacy", reference=str(tmp_path / "reference"),
                         output=tmp_path / "out.json")
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["spans"] == {
        "correct": {"agree": 1, "disagree": 1, "none": 0},      # Ajax ORG; Tom PER, asked ORG
        "wrong type": {"agree": 1, "disagree": 1, "none": 0},   # Oslo LOC (GPE); Lazio LOC, asked ORG
        "wrong span": {"agree": 0, "disagree": 0, "none": 1},   # "beat"
    }
    assert result["disagree_precision_wrong_type"] == 0.5 and result["disagree_recall_wrong_type"] == 0.5
    assert result["disagree_rate_correct"] == 0.5
    assert {"noisy": "LOC", "clean": "ORG", "reference": "LOC", "count": 1} in result["wrong_types"]
    assert "wrong type: agree 1, disagree 1, none 0" in capsys.readouterr().out
    # called from Python without --output it prints and writes nothing (its defaults are values)
    written = set(tmp_path.iterdir())
    reference_types.main(tmp_path / "noisy.spacy", tmp_path / "clean.spacy", reference=str(tmp_path / "reference"))
    assert "wrong type: agree 1" in capsys.readouterr().out and set(tmp_path.iterdir()) == written
    # a reference with no ner, or two files that are not the same docs, are refused by name
    spacy.blank("en").to_disk(tmp_path / "blank")
    with pytest.raises(SystemExit, match="no 'ner'"):
        reference_types.main(tmp_path / "noisy.spacy", tmp_path / "clean.spacy", reference=str(tmp_path / "blank"))
    DocBin(docs=[clean, clean]).to_disk(tmp_path / "two.spacy")
    with pytest.raises(SystemExit, match="same docs"):
        reference_types.main(tmp_path / "noisy.spacy", tmp_path / "two.spacy", reference=str(tmp_path / "reference"))


def test_every_analysis_script_can_be_called_from_python_with_its_defaults():
    """The analysis scripts declare typer's options with `Annotated`, so a parameter's default
    is the value itself: `main()` called from Python without `output` gets None, not typer's
    OptionInfo (which a script would then try to write to)."""
    import importlib
    import inspect

    import typer.models

    scripts = sorted(p.stem for p in (BENCHMARK / "scripts").glob("*.py") if "typer.run(main)" in p.read_text(encoding="utf8"))
    assert {"filter_whatif", "label_signal", "type_confusion", "reference_types"} <= set(scripts)
    for name in scripts:
        for param in inspect.signature(importlib.import_module(name).main).parameters.values():
            assert not isinstance(param.default, typer.models.ParameterInfo), f"{name}.main({param.name}=...)"


def test_paired_compares_any_seeds_both_have_against_the_references_mean(tiny_benchmark):
    """paired.py: the seeds a later batch adds, paired seed by seed; the share of the gap is
    taken against the reference's mean over all its seeds, which are not re-run."""
    import paired

    spec = bench.load_benchmark(tiny_benchmark)
    values = {"ner_uniform": {3: 50.0, 4: 52.0, 5: 51.0}, "ner_hard": {3: 60.0, 4: 64.0}, "ner_cnn": {0: 80.0, 1: 82.0}}
    for name, scores in values.items():
        for seed, f1 in scores.items():
            bench.write_json(bench.result_path(spec.root, "tiny", spec.systems[name], seed), synthetic_run(name, seed, f1))
    assert paired.seeds_run(spec, "tiny", "ner_cnn") == [0, 1]
    system = paired.seed_scores(spec, "tiny", "ner_hard", [3, 4, 5])
    assert system == {3: 60.0, 4: 64.0}  # seed 5 has not run: left out, not counted as 0
    result = paired.compare(system, paired.seed_scores(spec, "tiny", "ner_uniform", [3, 4, 5]),
                            paired.seed_scores(spec, "tiny", "ner_cnn", paired.seeds_run(spec, "tiny", "ner_cnn")))
    assert result["seeds"] == [3, 4] and result["difference"]["values"] == [10.0, 12.0]
    assert result["difference"]["t"] == pytest.approx(11.0)  # 11 / (1.414 / sqrt(2))
    assert result["share_of_mean_gap"] == pytest.approx(11.0 / (81.0 - 51.0))
    with pytest.raises(ValueError, match="share no seed"):
        paired.compare({7: 1.0}, {8: 1.0}, {})
    with pytest.raises(typer.BadParameter, match="not a system"):
        paired.seed_scores(spec, "tiny", "ner_nothing", [0])
