"""A sweep: one experiment as a declared grid of runs, run resumably into one JSON of results.

:class:`Sweep` holds everything about one experiment: its profiles, its grid of runs, the executor
of a run, its time estimate and the notebook's view of its results. :meth:`Sweep.run` runs it.

The JSON (``OUT/experiments_<name>.json``) holds the sweep, profile, command and declared grid, and
per finished run its exact configuration, seed, software versions, seconds and result rows
(``{"metrics": {...}, ...}``; extra keys such as ``test_missing_rate`` or ``status`` are factors).
It is rewritten atomically after every run, and a resumed sweep never repeats a finished run; a
sweep whose grid has grown (new runs declared, every finished run declared as it was) resumes too.
Processes that run the same sweep into the same folder share it: each run is claimed by one of
them (``OUT/claims/<sweep>.<id>`` holds its PID, and a claim whose process has died is taken over), and
the JSON is re-read and merged under a lock before every write.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from alignlib import PROFILES, PROJECT_ROOT, __version__
from alignlib.common.errors import UserError
from alignlib.common.files import atomic_write_json

RUN_OVERHEAD_S = 1.0  # seconds a run spends around its main loop (model build, data, evaluation), for estimates


class SweepError(UserError):
    """A sweep that cannot start as asked (the message says why)."""


@dataclass(frozen=True)
class Sweep:
    """One experiment, run by ``python -m alignlib.experiments NAME``.

    * ``name``: the command line's NAME; ``reproduces``: what it reruns (recorded in the JSON);
      ``notebook``: the notebook that shows it.
    * ``profiles``: ``{"default": settings, "full": settings}``, plain data (sizes, seeds, ...):
      ``default`` takes CPU minutes (the notebook, CI), ``full`` made the committed results.
    * ``grid(settings) -> runs``: JSON-able dicts with ``id`` (unique in the sweep), ``kind`` (the
      executor's, recorded), ``factors`` (what the tables group by) and what ``execute`` needs.
    * ``execute(run, root, device) -> (configuration, rows)``: one run, its files under ``root``.
    * ``estimate(run) -> seconds`` on this project's 2-core CPU (an upper bound if ``upper_bound``).
    * ``skip(run, finished) -> (configuration, rows) or None``: a run not worth running, given the
      finished runs (``{id: result}``), and what to record for it.
    * ``show(record, title)``: the notebook's plots and tables of a results record.
    * ``statistics(record) -> rows``: the sweep's comparisons (adjusted p-values, minimal detectable
      effects, verdicts) as JSON-able rows, stored under ``"statistics"`` once every run has finished.
    """

    name: str
    reproduces: str
    profiles: dict[str, dict]
    grid: Callable[[dict], list[dict]]
    execute: Callable[[dict, Path, str], tuple[dict, list[dict]]]
    estimate: Callable[[dict], float]
    notebook: str = "08_paper_experiments"
    upper_bound: bool = False
    skip: Callable[[dict, dict], tuple[dict, list[dict]] | None] | None = None
    show: Callable | None = None
    statistics: Callable[[dict], list[dict]] | None = None

    def runs(self, profile: str) -> list[dict]:
        """The declared runs of ``profile``, as the JSON stores them."""
        if profile not in PROFILES:
            raise SweepError(f"unknown profile {profile!r}; choose one of {PROFILES}")
        return json.loads(json.dumps(self.grid(self.profiles[profile])))

    def results_path(self, out: str | os.PathLike) -> Path:
        return Path(out) / f"experiments_{self.name}.json"

    def start(self, profile: str, out: str | os.PathLike, resume: bool, device: str,
              command: str | None = None, allow_dirty: bool = False) -> tuple[Path, list[dict], dict]:
        """The results path, the declared runs and the results record to continue (its finished runs
        read from the JSON with ``resume``); raises :class:`SweepError` when the sweep cannot start,
        among others for the full profile from a tree whose library has uncommitted changes (the
        committed results name one clean commit), unless ``allow_dirty`` (then recorded)."""
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise SweepError(f"--out {out} is a file, not a folder")
        if profile == "full" and not allow_dirty and str(software()["git"]).endswith("+dirty"):
            raise SweepError("the full profile runs from a clean commit: alignlib/ has uncommitted changes "
                             "(commit them, or pass --allow-dirty, which the results record)")
        path = self.results_path(out)
        grid = self.runs(profile)
        record = {"sweep": self.name, "profile": profile, "reproduces": self.reproduces, "device": device,
                  "command": command or f"python -m alignlib.experiments {self.name} --profile {profile} --out {out}",
                  "estimated_seconds": sum(map(self.estimate, grid)), "grid": grid, "runs": {},
                  **({"allow_dirty": True} if allow_dirty else {})}
        if path.exists():
            if not resume:
                raise SweepError(f"{path} exists; pass --resume to continue that sweep, or choose another --out")
            old = json.loads(path.read_text())
            if not grows(old, self.name, profile, grid):
                raise SweepError(f"{path} holds another sweep, profile or grid; choose another --out")
            record["runs"] = old["runs"]
        return path, grid, record

    def run(self, profile: str = "default", out: str | os.PathLike = "build/experiments", resume: bool = False,
            device: str = "cpu", progress: bool = True, command: str | None = None, job: str | None = None,
            allow_dirty: bool = False) -> dict:
        """Run (or continue, with ``resume``) the sweep; returns its results record (also the JSON).

        Runs go to ``out/runs/<name>/<id>``, synthetic data to ``out/data``, the JSON to
        :meth:`results_path`, rewritten atomically after every run. ``job``: run only the run of that
        id, as a scheduler's job (:mod:`~alignlib.experiments.cluster`; the scheduler, not a claim,
        keeps it to one process). ``allow_dirty``: as :meth:`start`.
        """
        out = Path(out)
        path, grid, record = self.start(profile, out, resume, device, command, allow_dirty)
        out.mkdir(parents=True, exist_ok=True)
        versions = software()
        todo = [run for run in grid if run["id"] not in record["runs"] and job in (None, run["id"])]
        from tqdm.auto import tqdm

        with tqdm(total=len(grid), initial=len(grid) - len(todo), desc=self.name, unit="run", disable=not progress) as bar:
            for run in todo:
                with locked(path):  # another worker may have finished or taken it meanwhile
                    record["runs"] = {**read_runs(path), **record["runs"]}
                    if run["id"] in record["runs"] or (job is None and not claim(out, f"{self.name}.{run['id']}")):
                        continue
                bar.set_postfix_str(run["id"])
                start = time.perf_counter()
                skipped = self.skip(run, record["runs"]) if self.skip else None
                config, rows = skipped or self.execute({**run, "sweep": self.name}, out, device)
                done = {"factors": run["factors"], "config": config, "seed": run["factors"].get("seed"),
                        "software": versions, "device": device, "seconds": time.perf_counter() - start, "rows": rows}
                with locked(path):
                    current = json.loads(path.read_text()) if path.exists() else {"sweep": self.name, "profile": profile}
                    if not grows(current, self.name, profile, grid):
                        raise SweepError(f"{path} was changed by a sweep with another grid while this run trained")
                    record["runs"] = {**current.get("runs", {}), **record["runs"], run["id"]: done}
                    atomic_write_json(path, record)
                if job is None:
                    claim_path(out, f"{self.name}.{run['id']}").unlink(missing_ok=True)
                bar.update()
        with locked(path):
            record["runs"] = {**read_runs(path), **record["runs"]}
            if self.statistics and all(run["id"] in record["runs"] for run in grid):
                record["statistics"] = self.statistics(record)
            atomic_write_json(path, record)
        return record


def grows(old: dict, name: str, profile: str, grid: list[dict]) -> bool:
    """Whether the results record ``old`` can continue as sweep ``name``'s ``profile`` with ``grid``:
    the same sweep and profile, and each of its finished runs declared in ``grid`` as it was."""
    declared = {run["id"]: run for run in grid}
    before = {run["id"]: run for run in old.get("grid", [])}
    return ((old.get("sweep"), old.get("profile")) == (name, profile)
            and all(declared.get(run_id, "absent") == before.get(run_id) for run_id in old.get("runs", {})))


def run_id(label: str, seed: int) -> str:
    """``<label as a slug>-seed<seed>``: a run's id."""
    return f"{re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')}-seed{seed}"


def software() -> dict:
    """Versions that can change a result: Python, libraries, alignlib and its git commit."""
    import numpy
    import scipy
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "alignlib"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "alignlib": __version__, "git": commit, "machine": platform.machine(),
            "torch_threads": torch.get_num_threads()}


# -- several workers on one sweep ---------------------------------------------------------------------
def claim_path(out: Path, run_id: str) -> Path:
    return Path(out) / "claims" / run_id


def claim(out: Path, run_id: str) -> bool:
    """Take ``run_id`` for this process; False when a live process holds it. Call under :func:`locked`."""
    path = claim_path(out, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        try:
            holder = int(path.read_text())
        except (OSError, ValueError):
            holder = 0
        if holder != os.getpid() and process_alive(holder):
            return False
    path.write_text(str(os.getpid()))
    return True


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` (through ``path.lock``) for the sweep's workers."""
    import fcntl

    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_runs(path: Path) -> dict:
    """The finished runs recorded at ``path`` (empty when there is no file yet)."""
    return json.loads(path.read_text())["runs"] if path.exists() else {}


# -- results ------------------------------------------------------------------------------------------
def load(path: str | os.PathLike) -> dict:
    """A sweep's results record from its JSON."""
    return json.loads(Path(path).read_text())


def tidy(record: dict):
    """One row per (run, result row, metric): the run's factors, the row's extra keys, ``metric``,
    ``value`` (a result row without metrics, such as an out-of-memory point, gives one row, value NaN)."""
    import pandas as pd

    rows = []
    for run in record["grid"]:
        done = record["runs"].get(run["id"])
        for result in (done or {}).get("rows", []):
            extra = {k: v for k, v in result.items() if k != "metrics"}
            if not result["metrics"]:  # a point that ran out of memory or time: its status, no value
                rows.append({"sweep": record["sweep"], "run": run["id"], **run["factors"], **extra,
                             "metric": None, "value": float("nan")})
            for metric, value in result["metrics"].items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append({"sweep": record["sweep"], "run": run["id"], **run["factors"], **extra,
                                 "metric": metric, "value": float(value)})
    return pd.DataFrame(rows)
