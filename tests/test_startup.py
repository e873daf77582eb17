"""Start-up cost of the console scripts: `--help` and a usage error answer before torch is imported,
and `emotion-perception eval` of a results.jsonl never imports torch (a robot or laptop scoring
a run should not pay torch's seconds of import, nor need it at all)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import PACKAGE_DIR
from emotion_perception.cli import build_parser

HEAVY = ("torch", "torchvision", "open_clip", "matplotlib", "cv2", "numpy", "rosbags")
OFFLINE_SCRIPT = re.compile(r'"(emotion-[a-z-]+) = ([\w.]+):(\w+)"')


def console_scripts() -> dict[str, tuple[str, str]]:
    """The offline tools declared in setup.py (the ROS nodes need rclpy, not tested here)."""
    found = OFFLINE_SCRIPT.findall((PACKAGE_DIR / "setup.py").read_text())
    return {name: (module, func) for name, module, func in found}


def _run_entry(module: str, func: str, argv: list[str]) -> tuple[dict, float]:
    """Call ``module.func(argv)`` in a fresh interpreter; (what it reports, wall seconds)."""
    code = textwrap.dedent(f"""
        import contextlib, io, json, sys
        sys.path.insert(0, {str(PACKAGE_DIR)!r})
        from {module} import {func} as entry
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                status = entry({argv!r})
            except SystemExit as exc:
                status = exc.code
        print(json.dumps({{"status": status, "output": out.getvalue(),
                           "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
    """)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def test_every_offline_console_script_is_found():
    assert set(console_scripts()) >= {"emotion-perception", "emotion-train", "emotion-evaluate", "emotion-fetch"}


@pytest.mark.parametrize("script", sorted(console_scripts()))
def test_help_imports_no_torch_and_names_the_script(script):
    module, func = console_scripts()[script]
    report, wall = _run_entry(module, func, ["--help"])
    assert report["status"] == 0
    assert report["output"].startswith(f"usage: {script} ")
    assert report["heavy"] == [], f"{script} --help imported {report['heavy']} ({wall:.1f} s)"


@pytest.mark.parametrize("command", sorted(build_parser()._subparsers._group_actions[0].choices))
def test_subcommand_help_imports_no_torch(command):
    report, wall = _run_entry("emotion_perception.cli", "main", [command, "--help"])
    assert report["status"] == 0 and report["output"].startswith(f"usage: emotion-perception {command}")
    assert report["heavy"] == [], f"{command} --help imported {report['heavy']} ({wall:.1f} s)"


def test_usage_error_answers_before_heavy_imports():
    report, _ = _run_entry("emotion_perception.training.cli", "train_main", [])
    assert report["status"] == 2 and "--config" in report["output"]
    assert report["heavy"] == []


def _face(box, probs):
    return {"id": "1", "box": box, "class": "happy", "class_id": 0, "confidence": max(probs), "probs": probs,
            "polarity": None, "polarity_probs": None, "valence": 0.0, "arousal": 0.0, "frames_used": 1,
            "model_id": "hand-made"}


def test_eval_of_results_jsonl_never_imports_torch(tmp_path):
    happy = [0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01]
    sad = [0.02, 0.9, 0.02, 0.02, 0.02, 0.01, 0.01]
    lines = [{"frame": i, "stamp_ns": 1_000_000_000 + i * 100_000_000, "frame_id": "camera", "processed": True,
              "latency_ms": 5.0, "timings_ms": {}, "faces": [_face([10, 10, 50, 50], happy if i < 3 else sad)]}
             for i in range(5)]
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    labels = tmp_path / "labels.csv"
    labels.write_text("start,end,label\n0,5,happy\n")
    report, _ = _run_entry("emotion_perception.cli", "main",
                           ["eval", str(results), "--labels", str(labels), "--out", str(tmp_path / "report")])
    assert report["status"] == 0, report["output"]
    assert "WAR 60.0%" in report["output"]  # 3 of 5 frames right, computed by hand
    assert "torch" not in report["heavy"]
    assert (tmp_path / "report" / "report.html").is_file()
