"""benchmarks/gpu_check.py on a machine without CUDA: one line saying so, exit 0, nothing written."""
import subprocess
import sys

import pytest
import torch

from alignlib import PROJECT_ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs the checks")
def test_gpu_check_says_so_in_one_line_without_cuda(tmp_path):
    results = PROJECT_ROOT / "benchmarks" / "results"
    before = {p: p.stat().st_mtime_ns for p in results.glob("gpu_*.json")}
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["gpu_check: no CUDA device on this machine; the GPU checks need one "
                                                "(nothing was run)"]
    assert {p: p.stat().st_mtime_ns for p in results.glob("gpu_*.json")} == before and not list(tmp_path.iterdir())
