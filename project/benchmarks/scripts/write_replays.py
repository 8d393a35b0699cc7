"""Write the replay file (seedN.replay.jsonl, see bench.write_replay) beside every result on
record whose finished training folder is on this machine and has none yet: for runs that
finished before run.py wrote them.

    python scripts/write_replays.py --scale full
"""
import argparse

from bench import load_benchmark, result_path, write_replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full")
    args = parser.parse_args()
    bench = load_benchmark()
    for stats in sorted((bench.root / "training" / args.scale).glob("*/seed*/sampler_stats.jsonl")):
        out, name = stats.parent, stats.parent.parent.name
        if name not in bench.systems:
            continue
        seed = int(out.name[len("seed"):])
        target = result_path(bench.root, args.scale, bench.systems[name], seed)
        if target.with_suffix(".replay.jsonl").exists() or not target.exists():
            continue
        finished = out / "train.json"
        if not finished.exists() or finished.stat().st_mtime < stats.stat().st_mtime:
            print(f"{name}/seed{seed}: still training, left alone")
            continue
        print(f"{name}/seed{seed}: wrote {write_replay(out, target).relative_to(bench.root)}")

if __name__ == "__main__":
    main()
