"""alignlib: cross-modal alignment for Mamba models, built step by step from the papers' equations.

The package follows the data flow: ``data`` (features, with ``metrics``) -> ``align`` (OT and MMD) ->
``ssm`` (Mamba blocks) -> ``models`` -> ``train`` -> ``analysis`` and ``experiments`` -> ``widgets`` ->
``notebooks``.
Importing it changes nothing in the process: the command lines configure threads
(:func:`alignlib.common.threads.configure`).
"""
from pathlib import Path

__version__ = "0.1.0"
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the repository: notebooks/, benchmarks/, data_samples/
PROFILES = ("default", "full")  # every notebook's and sweep's sizes: CPU minutes, or the committed (GPU-scale) runs
