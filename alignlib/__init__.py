"""alignlib: cross-modal alignment for Mamba models, built step by step from the papers' equations.

The package follows the data flow: ``data`` (features) -> ``align`` (OT and MMD) -> ``ssm`` (Mamba
blocks) -> ``models`` -> ``train`` -> ``analysis`` and ``experiments`` -> ``widgets`` -> ``notebooks``.
"""
from pathlib import Path

from alignlib.common import threads

__version__ = "0.1.0"
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the repository: notebooks/, benchmarks/, data_samples/
PROFILES = ("default", "full")  # every notebook's and sweep's sizes: CPU minutes, or the committed (GPU-scale) runs
threads.configure()  # one thread count for torch and the C++ scan, idle threads asleep (README: Threads)
