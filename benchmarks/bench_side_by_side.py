"""Two notebooks side by side (03 and 04 by default) against each one alone, as the runner executes
them (a papermill kernel each, started with the environment alignlib gives it).

Each notebook runs alone, then both at once twice: with each kernel's default thread count (every
core, as two notebooks open in JupyterLab) and with each kernel given its share (half the cores,
as ``pytest -n 2`` and ``alignlib.experiments --workers 2`` start them). The ratio is a notebook's
time beside the other over its time alone: two processes that share the cores fairly stay near 2
or below (two notebooks that spun against each other took 13-19 times as long). The CPU time of
each run (its kernel's included) is recorded beside its wall time: spinning shows as CPU time.
Run: python benchmarks/bench_side_by_side.py [--notebooks 03 04]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alignlib import notebooks
from alignlib.common import threads
from common import write_result


def execute(stem: str, out: str) -> dict:
    """The child process: one notebook, its wall and CPU seconds (its kernel's included)."""
    run = notebooks.execute(notebooks.discover(stem)[0], Path(out))
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return {"seconds": run.seconds, "cpu_seconds": sum(u.ru_utime + u.ru_stime for u in usage)}


def launch(stem: str, env: dict, out: Path) -> dict:
    start = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--execute", stem, str(out / stem)], env=env,
                           capture_output=True, text=True)
    if child.returncode:
        raise RuntimeError(f"{stem} failed:\n{child.stderr[-3000:]}")
    return {"notebook": stem, **json.loads(child.stdout.splitlines()[-1]), "process_seconds": time.perf_counter() - start}


def main() -> None:
    threads.configure()
    parser = argparse.ArgumentParser()
    parser.add_argument("--notebooks", nargs=2, default=["03", "04"], metavar="PATTERN")
    parser.add_argument("--execute", nargs=2, metavar=("PATTERN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.execute:
        print(json.dumps(execute(*args.execute)))
        return
    stems = [notebooks.discover(p)[0].stem for p in args.notebooks]
    # as a kernel started by JupyterLab gets it: no thread count, the kernel spec's passive wait policy
    default = {k: v for k, v in os.environ.items() if k not in threads.environment(1)} | {"OMP_WAIT_POLICY": "passive"}
    shared = default | threads.environment(threads.share(2))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for stem in stems:
            rows.append({"setting": "alone", **launch(stem, default, Path(folder) / "alone")})
        for n, (setting, env) in enumerate((("side by side, default threads", default),
                                            ("side by side, shared threads", shared))):
            with ThreadPoolExecutor(2) as pool:
                pair = pool.map(lambda stem: launch(stem, env, Path(folder) / str(n)), stems)
                rows += [{"setting": setting, **row} for row in pair]
    alone = {r["notebook"]: r["seconds"] for r in rows if r["setting"] == "alone"}
    print(f"cores {threads.cores()}; {' and '.join(stems)}")
    print(f"{'setting':<31} {'notebook':<26} {'seconds':>8} {'cpu s':>7} {'vs alone':>9}")
    for row in rows:
        row["ratio_to_alone"] = row["seconds"] / alone[row["notebook"]]
        print(f"{row['setting']:<31} {row['notebook']:<26} {row['seconds']:>8.1f} {row['cpu_seconds']:>7.1f} "
              f"{row['ratio_to_alone']:>8.2f}x")
    worst = {s: max(r["ratio_to_alone"] for r in rows if r["setting"] == s) for s in dict.fromkeys(r["setting"] for r in rows)}
    print("worst ratio to alone:", {s: round(v, 2) for s, v in worst.items()})
    path = write_result("side_by_side", {"cores": threads.cores(), "notebooks": stems, "shared_threads": threads.share(2),
                                         "worst_ratio_to_alone": worst, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
