"""The benchmark scripts still run (on tiny frames; their timings are not checked here): a
refactor that breaks one shows up in the suite, not on the day someone measures."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script, args, expected", [
    ("bench_modifier.py", ["--cells", "3", "--repeats", "1"],
     ["| PTM, output_ordering |", "| adaptive CNA |", "| ours, default.onnx (FeatureSet) |"]),
    ("bench_label.py", ["--frames", "3", "--cells", "3", "--loop-frames", "2", "--workers", "1"],
     ["atomclass label, 1 worker(s):", "plain OVITO loop:"]),
    ("bench_features.py", ["--cells", "3", "--repeats", "1", "--threads", "1", "--memory-cells", "0"],
     ["| fcc Ni, 108 atoms | 1 |", "| random alloy, 108 atoms | 1 |"]),
])
def test_benchmark_runs(script, args, expected):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for text in expected:
        assert text in done.stdout, done.stdout
