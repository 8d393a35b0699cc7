"""`nlp.pipe(n_process=N)` with the rsft components: forked workers used to hang once the
parent had run torch with more than one thread (spaCy #6662); workers now run torch at one
thread. Each case runs in its own process with a timeout, so a hang fails the test."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = '''
import json, multiprocessing, sys
sys.path.insert(0, {tests!r})
import torch
from util import make_examples, make_tiny_ner_nlp

def threads_in_worker(_):
    from spacy_rsft.pipeline.threads import use_one_thread_in_worker_process
    use_one_thread_in_worker_process()
    return torch.get_num_threads()

if __name__ == "__main__":
    method = sys.argv[1]
    torch.set_num_threads(2)
    nlp = make_tiny_ner_nlp({bert!r})
    nlp.initialize(lambda: make_examples(nlp))
    texts = ["Anna met Tom in Oslo and flew to Paris on Monday ." * 8, "Rain fell ."] * 24
    single = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    multiprocessing.set_start_method(method, force=True)
    multi = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts, n_process=2, batch_size=8)]
    with multiprocessing.Pool(1) as pool:
        worker_threads = pool.map(threads_in_worker, [0])[0]
    print(json.dumps({{"same": single == multi, "docs": len(multi), "worker_threads": worker_threads,
                      "parent_threads": torch.get_num_threads()}}))
'''


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_n_process_workers_run_one_torch_thread_and_do_not_hang(tmp_path, tiny_bert, method):
    script = tmp_path / "pipe_n_process.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), bert=tiny_bert))
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    try:
        done = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True, timeout=180,
                              env=env, start_new_session=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"nlp.pipe(n_process=2) with {method} hung")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"same": True, "docs": 48, "worker_threads": 1, "parent_threads": 2}
