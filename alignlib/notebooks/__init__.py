"""The notebook suite: record a notebook's key numbers, execute notebooks with papermill and
render them as HTML pages that read offline (:mod:`alignlib.notebooks.export`); the exercises'
checks and reference solutions are :mod:`alignlib.notebooks.exercises` and
:mod:`alignlib.notebooks.solutions`.

Command line::

    python -m alignlib.notebooks run [--profile default|full] [--only PATTERN] [--out DIR] [--no-solutions]

executes every notebook in ``notebooks/`` (or those whose name contains PATTERN) into DIR
(default ``build/``), writes each one's metrics and HTML page beside it (maths, widgets and plots
drawn with the scripts in ``DIR/static``, no network needed) and an ``index.html`` that links them,
and exits non-zero naming the notebook, the cell and the error if one fails. The exercises run
with ``solutions=True`` (every reference solution through its check, folded on the page) unless
``--no-solutions`` runs them as a student sees them.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from alignlib import PROFILES, PROJECT_ROOT
from alignlib.common import threads
from alignlib.common.errors import MissingFileError, UserError
from alignlib.common.files import atomic_write_bytes, atomic_write_json

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOK_DIR / "params"
# The kernel logs only errors: its start-up warnings (e.g. "Kernel is running over TCP without
# encryption", about the local connection papermill opens) would repeat for every notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def record_metrics(metrics_path: str | None, **metrics: float) -> dict[str, float]:
    """Record a notebook's key numbers as JSON at ``metrics_path`` (skipped when it is empty).

    Every value must be a finite number: a NaN recorded here would make the regression test
    meaningless, so it is an error.
    """
    clean = {}
    for name, value in metrics.items():
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"metric {name!r} is {value}; only finite numbers can be recorded")
        clean[name] = value
    if metrics_path:
        atomic_write_json(metrics_path, clean)
    return clean


def discover(only: str | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The suite's notebooks ``NN_name.ipynb`` in order, optionally those whose name contains ``only``."""
    notebooks = sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))
    if only:
        notebooks = [p for p in notebooks if only in p.stem]
    return notebooks


def profile_parameters(notebook: Path, profile: str) -> dict:
    """Parameters of a profile: none for ``default`` (the notebook's own), a YAML file for ``full``."""
    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    if profile == "default":
        return {}
    import yaml

    path = PARAMS_DIR / f"{notebook.stem}.{profile}.yaml"
    if not path.exists():
        raise MissingFileError(f"{notebook.name}: no {profile} parameter file at {path}")
    return yaml.safe_load(path.read_text()) or {}


class NotebookFailed(RuntimeError):
    """A notebook raised: the message names the notebook, the failing cell and the error."""


@dataclass
class NotebookRun:
    notebook: Path
    output: Path
    metrics_path: Path
    seconds: float
    metrics: dict = field(default_factory=dict)


def execute(
    notebook: Path,
    out_dir: Path,
    profile: str = "default",
    cell_timeout: int = 1800,
    extra_parameters: dict | None = None,
    solutions: bool = True,
) -> NotebookRun:
    """Execute one notebook with papermill (kernel ``python3``) into ``out_dir``.

    The executed copy goes to ``out_dir/<name>.ipynb`` and its metrics to
    ``out_dir/<name>.metrics.json``. ``solutions`` sets the notebook's parameter of that name (if it
    has one): its exercises then check their reference solutions. Raises :class:`NotebookFailed` on
    an error in a cell.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    metrics_path = out_dir / f"{notebook.stem}.metrics.json"
    metrics_path.unlink(missing_ok=True)
    parameters = {**profile_parameters(notebook, profile), **(extra_parameters or {})}
    parameters["metrics_path"] = str(metrics_path)
    if "solutions" in papermill.inspect_notebook(str(notebook)):
        parameters.setdefault("solutions", solutions)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            language="python",
            execution_timeout=cell_timeout,
            progress_bar=False,
            cwd=str(notebook.parent),
            extra_arguments=KERNEL_ARGUMENTS,
        )
    except PapermillExecutionError as error:
        raise NotebookFailed(
            f"{notebook.name}: cell {error.exec_count or error.cell_index} failed with "
            f"{error.ename}: {error.evalue}\n  executed copy: {output}"
        ) from None
    seconds = time.perf_counter() - start
    if not metrics_path.exists():
        raise NotebookFailed(f"{notebook.name}: ran, but recorded no metrics at {metrics_path}")
    metrics = json.loads(metrics_path.read_text())
    return NotebookRun(notebook, output, metrics_path, seconds, metrics)


def write_index(runs: list[NotebookRun], failures: list[str], out_dir: Path, profile: str) -> Path:
    """Render each executed notebook to an offline HTML page and write ``out_dir/index.html`` linking them."""
    import nbformat

    from alignlib.notebooks.export import install_assets, notebook_to_html

    install_assets(out_dir)
    rows = []
    for run in runs:
        html_path = run.output.with_suffix(".html")
        atomic_write_bytes(html_path, notebook_to_html(nbformat.read(run.output, as_version=4)).encode())
        metrics = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in sorted(run.metrics.items())
        )
        rows.append(
            f"<h2><a href='{html_path.name}'>{html.escape(run.notebook.stem)}</a></h2>"
            f"<p>{run.seconds:.1f} s &middot; <a href='{run.output.name}'>executed notebook</a> &middot; "
            f"<a href='{run.metrics_path.name}'>metrics</a></p><table>{metrics}</table>"
        )
    failed = "".join(f"<pre class='failed'>{html.escape(f)}</pre>" for f in failures)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>alignlib notebooks</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td{padding:0 1em}"
        ".failed{color:#b00}</style></head><body>"
        f"<h1>alignlib notebooks ({html.escape(profile)} profile)</h1>{failed}{''.join(rows)}</body></html>"
    )
    return atomic_write_bytes(out_dir / "index.html", page.encode())


def run_suite(profile: str, only: str | None, out_dir: Path, cell_timeout: int, solutions: bool = True) -> int:
    from tqdm.auto import tqdm

    notebooks = discover(only)
    if not notebooks:
        print(f"no notebook in {NOTEBOOK_DIR} matches {only!r}", file=sys.stderr)
        return 2
    runs, failures = [], []
    with tqdm(notebooks, desc="notebooks", unit="nb") as bar:
        for notebook in bar:
            bar.set_postfix_str(notebook.stem)
            try:
                runs.append(execute(notebook, out_dir, profile, cell_timeout, solutions=solutions))
            except NotebookFailed as error:
                failures.append(str(error))
    index = write_index(runs, failures, Path(out_dir).resolve(), profile)
    for run in runs:
        print(f"ok      {run.notebook.name} ({run.seconds:.1f} s) -> {run.output}")
    for failure in failures:
        print(f"FAILED  {failure}", file=sys.stderr)
    print(f"\nOpen {index} to read the executed notebooks and their metrics.")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    threads.configure()  # every kernel started here inherits the count and the passive wait
    parser = argparse.ArgumentParser(prog="python -m alignlib.notebooks", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="execute notebooks with papermill")
    run.add_argument("--profile", choices=PROFILES, default="default",
                     help="default: the notebooks' small CPU parameters; full: notebooks/params/*.full.yaml (GPU scale)")
    run.add_argument("--only", metavar="PATTERN", help="run only notebooks whose name contains PATTERN")
    run.add_argument("--out", type=Path, default=PROJECT_ROOT / "build", help="output folder (default: build/)")
    run.add_argument("--cell-timeout", type=int, default=1800, metavar="SECONDS", help="time limit per cell")
    run.add_argument("--no-solutions", dest="solutions", action="store_false",
                     help="leave the exercises unanswered, as a student sees them (default: check the reference solutions)")
    args = parser.parse_args(argv)
    try:
        return run_suite(args.profile, args.only, args.out, args.cell_timeout, args.solutions)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

