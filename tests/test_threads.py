"""`nlp.pipe(n_process=N)` with the rsft components: forked workers used to hang once the
parent had run torch with more than one thread (spaCy #6662); spaCy's workers now run torch
at one thread. Each case runs in its own process group with a timeout, so a hang fails the
test and leaves nothing behind."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = '''
import json, multiprocessing, sys
sys.path.insert(0, {tests!r})
import torch
from spacy.language import Language
from util import make_examples, make_tiny_ner_nlp

@Language.component("record_threads")
def record_threads(doc):
    doc.user_data["threads"] = torch.get_num_threads()
    return doc

def threads_in_forked_child(_):
    return torch.get_num_threads()

if __name__ == "__main__":
    method = sys.argv[1]
    multiprocessing.set_start_method(method, force=True)
    torch.set_num_threads(2)
    nlp = make_tiny_ner_nlp({bert!r})
    nlp.add_pipe("record_threads")
    nlp.initialize(lambda: make_examples(nlp))
    texts = ["Anna met Tom in Oslo and flew to Paris on Monday ." * 8, "Rain fell ."] * 24
    result = {{}}
    if method == "fork":  # a process that has not run the components forks with its threads
        with multiprocessing.Pool(1) as pool:
            result["fork_before_running"] = pool.map(threads_in_forked_child, [0])[0]
    single = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    docs = list(nlp.pipe(texts, n_process=2, batch_size=8))
    result["same"] = single == [[(e.start, e.end, e.label_) for e in d.ents] for d in docs]
    result["worker_threads"] = sorted({{d.user_data["threads"] for d in docs}})
    result["parent_threads"] = torch.get_num_threads()
    print(json.dumps(result))
'''


def run_script(script: Path, method: str, timeout: float = 180) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    proc = subprocess.Popen([sys.executable, str(script), method], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the hung workers too
        proc.communicate()
        pytest.fail(f"nlp.pipe(n_process=2) with {method} hung")
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_n_process_workers_run_one_torch_thread_and_do_not_hang(tmp_path, tiny_bert, method):
    script = tmp_path / "pipe_n_process.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), bert=tiny_bert))
    result = run_script(script, method)
    expected = {"same": True, "worker_threads": [1], "parent_threads": 2}
    if method == "fork":
        expected["fork_before_running"] = 2
    assert result == expected
