"""torchrun on CPU: 2 real processes, gloo, a static rendezvous on 127.0.0.1.

DDP training learns the separable fake clips and resumes, the confusion matrix summed over two
ranks equals the one-process matrix on the same clips, and the cache command sharded over two
ranks writes the same features as one process.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from fake_datasets import make_dfew

import emotion_perception
from emotion_perception.models.checkpoint import load_checkpoint
from emotion_perception.models.registry import build_model
from emotion_perception.training.cli import evaluate_main
from emotion_perception.training.config import TrainConfig
from emotion_perception.training.feature_cache import FeatureCache
from emotion_perception.training.cache_job import run_cache

PROFILE = "tiny-test-ous"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """``python -m emotion_perception.training.cli ARGS`` under torchrun with ``nproc`` processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
           "127.0.0.1", "--master_port", str(_free_port()), "-m", "emotion_perception.training.cli", *args]
    package_root = str(Path(emotion_perception.__file__).resolve().parents[1])  # this checkout's package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def dfew(tmp_path_factory):
    """Fake DFEW fold 1: 3 training clips + 1 test clip per class, 4..12 frames."""
    root = tmp_path_factory.mktemp("dfew")
    make_dfew(root, clips_per_class=3, frames=(4, 12), size=32)
    return root


def _config(path: Path, root: Path, out: Path, epochs: int, cache: Path | None = None) -> Path:
    cfg = {
        "profile": PROFILE, "device": "cpu", "seed": 1, "out": str(out),
        "dataset": {"kind": "dfew", "root": str(root), "fold": 1, "num_frames": 4, "val_fraction": 0.34,
                    "scene_from_face": True, **({"feature_cache": str(cache)} if cache else {})},
        # α 1.5: the switch drops the similarity and polarity terms within the run, so DDP also trains
        # with parameters that the loss does not use
        "train": {"epochs": epochs, "batch_size": 8, "lr": "2e-3", "num_workers": 0, "alpha": 1.5},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def test_ddp_training_learns_resumes_and_scores_like_one_process(dfew, tmp_path):
    out = tmp_path / "run"
    proc = torchrun("train", "--config", str(_config(tmp_path / "a.yaml", dfew, out, 6)), "--no-progress")
    assert proc.stdout.count("best epoch") == 1  # rank 0 alone reports
    history = _history(out)
    assert [h["epoch"] for h in history] == list(range(1, 7))
    # 14 training clips (7 per rank) in global batches of 8 (4 per rank): 2 steps per epoch, and
    # the epoch's loss terms are summed over both ranks.
    assert all(h["train"]["samples"] == 14 for h in history)
    first, last = history[0]["train"]["contrastive"], history[-1]["train"]["contrastive"]
    assert last < 0.5 * first, (first, last)
    assert max(h["val"]["war"] for h in history) >= 0.85  # the 7 validation clips, scored once each
    assert history[0]["train"]["full"] == 1.0 and history[-1]["train"]["full"] == 0.0  # the α switch acted
    meta = load_checkpoint(out / "last.pt", build_model(PROFILE, "cpu"), PROFILE)
    assert float(max(s["step"] for s in meta["optimizer"]["state"].values())) == 12

    # Resume to 7 epochs: only epoch 7 runs, the optimizer's step count continues.
    torchrun("train", "--config", str(_config(tmp_path / "b.yaml", dfew, out, 7)), "--resume", str(out / "last.pt"),
             "--no-progress")
    assert [h["epoch"] for h in _history(out)] == list(range(1, 8))
    resumed = load_checkpoint(out / "last.pt", build_model(PROFILE, "cpu"), PROFILE)
    assert resumed["epoch"] == 7 and float(max(s["step"] for s in resumed["optimizer"]["state"].values())) == 14

    # Test fold (7 clips: 4 on rank 0, 3 on rank 1): the summed confusion matrix is the one-process one.
    common = ["--checkpoint", str(out / "best.pt"), "--dataset", "dfew", "--root", str(dfew), "--fold", "1",
              "--num-workers", "0", "--no-progress", "--scene-from-face"]
    torchrun("evaluate", *common, "--out", str(tmp_path / "two"))
    assert evaluate_main([*common, "--out", str(tmp_path / "one")]) == 0
    one, two = (json.loads((tmp_path / d / "report.json").read_text())["folds"]["fold1"] for d in ("one", "two"))
    assert np.array(two["confusion_matrix"]).sum() == 7
    assert two["confusion_matrix"] == one["confusion_matrix"] and two["uar"] == one["uar"]
    rows = [(tmp_path / d / "predictions_fold1.csv").read_text().splitlines() for d in ("one", "two")]
    assert [r.split(",")[:3] for r in rows[0]] == [r.split(",")[:3] for r in rows[1]]


def test_cache_sharded_over_ranks_equals_one_process_and_trains_with_ddp(dfew, tmp_path):
    config = _config(tmp_path / "c.yaml", dfew, tmp_path / "run", 2, cache=tmp_path / "two")
    torchrun("train", "cache", "--config", str(config), "--no-progress")
    one_cfg = TrainConfig.from_yaml(config)
    one_cfg.dataset.feature_cache = str(tmp_path / "one")
    run_cache(one_cfg, progress=False)
    one, two = FeatureCache(tmp_path / "one"), FeatureCache(tmp_path / "two")
    assert {c["shard"][:4] for c in two.manifest["clips"].values()} == {"r000", "r001"}  # both ranks wrote
    assert set(one.manifest["clips"]) == set(two.manifest["clips"]) and len(one.manifest["clips"]) == 28
    assert {k: v for k, v in one.manifest.items() if k != "clips"} == {k: v for k, v in two.manifest.items()
                                                                       if k != "clips"}
    for name, entry in one.manifest["clips"].items():
        rows = np.arange(entry["face_frames"])
        for stream in ("face", "scene"):
            for flip in (False, True):
                assert np.array_equal(one.rows(name, stream, flip, rows), two.rows(name, stream, flip, rows))

    # DDP on the head alone, reading the cache the two ranks wrote.
    torchrun("train", "--config", str(config), "--no-progress")
    history = _history(tmp_path / "run")
    assert [h["epoch"] for h in history] == [1, 2] and history[1]["train"]["loss"] < history[0]["train"]["loss"]
