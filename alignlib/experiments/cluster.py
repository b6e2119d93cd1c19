"""A sweep on a cluster scheduler: each missing run one job of a submitit job array.

``python -m alignlib.experiments NAME --executor slurm [--partition P --gpus-per-run G --time MIN]``
submits the runs that the results JSON lacks, one run a job (:func:`submit`). Each job runs its run
through :meth:`Sweep.run <alignlib.experiments.sweep.Sweep.run>` and writes it into the same JSON under
the same lock as the local workers, so finished runs are kept whatever happens to the others. The jobs
submitted are recorded in ``OUT/jobs/<sweep>.json`` (run id -> job id) and their logs kept in
``OUT/jobs/<sweep>/``; ``--resume`` resubmits only the runs that are neither finished nor held by a job
that is still pending or running (a job that died, timed out or was cancelled). ``local-submitit``
runs the same jobs as subprocesses of this machine through submitit's ``LocalExecutor``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from alignlib.common import threads
from alignlib.common.files import atomic_write_json
from alignlib.experiments.sweep import Sweep, SweepError, locked, process_alive, read_runs

EXECUTORS = ("slurm", "local-submitit")
# SLURM states of a job that may still write its run (others: it ended, with or without a result)
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING",
          "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT"}


def make_executor(kind: str, folder: Path, partition: str | None = None, gpus_per_run: int = 0,
                  minutes: int = 60):
    """A submitit executor for ``kind`` (``slurm`` or ``local-submitit``), its logs in ``folder``:
    one task a job, ``gpus_per_run`` GPUs and ``minutes`` of wall time each."""
    import shutil

    import submitit

    if kind == "slurm":
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise SweepError(f"--executor slurm: {' and '.join(missing)} not on this machine's PATH; "
                             "submit from a SLURM login node")
        executor = submitit.SlurmExecutor(folder=folder)
        executor.update_parameters(time=minutes, nodes=1, ntasks_per_node=1, gpus_per_node=gpus_per_run or None,
                                   **({"partition": partition} if partition else {}))
    elif kind == "local-submitit":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=minutes, gpus_per_node=gpus_per_run)
    else:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {kind!r}")
    return executor


def run_job(name: str, profile: str, out: str, run_id: str, device: str, command: str,
            thread_count: int | None, allow_dirty: bool = False) -> str:
    """One job: the run ``run_id`` of sweep ``name`` into ``out``'s JSON; returns ``run_id``."""
    from alignlib.experiments import sweeps

    threads.configure(thread_count)
    sweeps()[name].run(profile, out, resume=True, device=device, progress=False, command=command, job=run_id,
                       allow_dirty=allow_dirty)
    return run_id


def active(job, earlier: bool = False) -> bool:
    """Whether ``job`` may still write its run; ``earlier``: submitted by an earlier command."""
    import submitit

    if isinstance(job, submitit.LocalJob):  # a local job's id is its controller's PID on this machine
        state = job.state
        return state == "RUNNING" or (state == "NO PROCESS AND NO RESULT" and process_alive(int(job.job_id)))
    if earlier:  # a job the scheduler no longer knows (UNKNOWN) has ended
        return job.state.split()[0] in ACTIVE
    return not job.done()  # one just submitted is UNKNOWN until the scheduler lists it


def submit(sweep: Sweep, executor, profile: str, out: str | Path, resume: bool, device: str, command: str,
           progress: bool = True, poll_s: float = 2.0, allow_dirty: bool = False) -> list[str]:
    """Submit ``sweep``'s missing runs as one job array through ``executor``, wait for every job
    (also those of an earlier submission still pending or running) and return the ids of the runs
    that are still missing (their jobs died or were cancelled; ``resume`` resubmits them)."""
    import submitit
    from tqdm.auto import tqdm

    out = Path(out)
    path, grid, record = sweep.start(profile, out, resume, device, command, allow_dirty)
    out.mkdir(parents=True, exist_ok=True)
    with locked(path):  # the record before any job: an empty results file of this grid
        atomic_write_json(path, {**record, "runs": read_runs(path)})
    jobs_path = out / "jobs" / f"{sweep.name}.json"
    submitted = json.loads(jobs_path.read_text()) if jobs_path.exists() else {}
    finished = read_runs(path)
    earlier = {run_id: executor.job_class(executor.folder, job_id) for run_id, job_id in submitted.items()
               if run_id not in finished}
    held = {run_id: job for run_id, job in earlier.items() if active(job, earlier=True)}
    todo = [run["id"] for run in grid if run["id"] not in finished and run["id"] not in held]
    local = isinstance(executor, submitit.LocalExecutor)
    count = threads.share(len(todo)) if local and todo else None  # local jobs share this machine's cores
    jobs = executor.map_array(run_job, *zip(*[(sweep.name, profile, str(out), run_id, device, command, count,
                                               allow_dirty) for run_id in todo])) if todo else []
    atomic_write_json(jobs_path, {**submitted, **{run_id: job.job_id for run_id, job in zip(todo, jobs)}})
    waiting = [(job, True) for job in held.values()] + [(job, False) for job in jobs]
    with tqdm(total=len(grid), initial=len(finished), desc=f"{sweep.name} ({len(waiting)} jobs)", unit="run",
              disable=not progress) as bar:
        while any(active(job, earlier) for job, earlier in waiting):
            time.sleep(poll_s)
            bar.update(len(read_runs(path)) - bar.n)
        bar.update(len(read_runs(path)) - bar.n)
    finished = read_runs(path)
    return [run["id"] for run in grid if run["id"] not in finished]
