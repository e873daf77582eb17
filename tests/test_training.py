"""Training loop, the emotion-train / emotion-evaluate CLIs and the training config, on fake DFEW."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fake_datasets import BlobDetector, make_dfew, make_ferv39k
from PIL import Image
from torch.utils.data import DataLoader

from emotion_perception.models.checkpoint import load_checkpoint, save_checkpoint
from emotion_perception.models.losses import AlphaSwitchCriterion
from emotion_perception.models.registry import build_model
from emotion_perception.training.cli import evaluate_main, train_main
from emotion_perception.training.config import ConfigError, TrainConfig
from emotion_perception.training.datasets import ClipDataset, read_dfew, read_ferv39k
from emotion_perception.training.prepare_dfew import prepare_dfew
from emotion_perception.training.trainer import CrossEntropyCriterion, Trainer, make_criterion, trainable_parameters

PROFILE = "tiny-test-ous"


@pytest.fixture(scope="module")
def dfew(tmp_path_factory):
    """Fake DFEW, five folds, 3 training + 1 test clip per class and fold, 4..12 frames each."""
    root = tmp_path_factory.mktemp("dfew")
    make_dfew(root, clips_per_class=3, frames=(4, 12), folds=(1, 2, 3, 4, 5), size=32, originals=True)
    prepare_dfew(root, root / "prepared", BlobDetector(), progress=False, face_size=32)  # the real scene stream
    return root


def _config(path, root, out, epochs):
    cfg = {
        "profile": PROFILE,
        "device": "cpu",
        "seed": 1,
        "out": str(out),
        "dataset": {"kind": "dfew", "root": str(root), "fold": 1, "num_frames": 4, "val_fraction": 0.34,
                    "prepared_root": str(root / "prepared")},
        "train": {"epochs": epochs, "batch_size": 8, "lr": "2e-3", "amp": True, "num_workers": 0},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_train_resume_and_evaluate_end_to_end(dfew, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--config", str(_config(tmp_path / "a.yaml", dfew, tmp_path / "ignored", 2)),
                       "--out", str(out), "--no-progress"]) == 0
    assert {"best.pt", "last.pt", "history.jsonl", "config.yaml", "summary.json"} <= {p.name for p in out.iterdir()}
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(0.0 <= h["val"]["uar"] <= 1.0 and np.isfinite(h["train"]["loss"]) for h in history)

    model = build_model(PROFILE, "cpu")
    last = load_checkpoint(out / "last.pt", model, PROFILE)
    assert last["epoch"] == 2 and last["optimizer"] is not None
    assert {"scheduler", "scaler", "criterion", "history"} <= set(last["extra"])
    best = load_checkpoint(out / "best.pt", model, PROFILE)
    assert best["epoch"] == last["extra"]["best"]["epoch"] and best["optimizer"] is None
    # 21 training clips - 7 validation clips = 14 -> 2 batches of 8 per epoch.
    steps = max(s["step"] for s in last["optimizer"]["state"].values())
    assert float(steps) == 4

    # Resume to 3 epochs: only epoch 3 runs, and the optimizer's step count continues from 4.
    cfg3 = _config(tmp_path / "b.yaml", dfew, out, 3)
    assert train_main(["--config", str(cfg3), "--resume", str(out / "last.pt"), "--no-progress"]) == 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    resumed = load_checkpoint(out / "last.pt", model, PROFILE)
    assert resumed["epoch"] == 3 and len(resumed["extra"]["history"]) == 3
    assert float(max(s["step"] for s in resumed["optimizer"]["state"].values())) == 6

    # One fold.
    report_dir = tmp_path / "eval1"
    assert evaluate_main(["--checkpoint", str(out / "best.pt"), "--dataset", "dfew", "--root", str(dfew),
                          "--fold", "1", "--out", str(report_dir), "--num-workers", "0", "--no-progress",
                          "--prepared-root", str(dfew / "prepared")]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    fold = report["folds"]["fold1"]
    cm = np.array(fold["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum() == 7 and (cm.sum(axis=1) == 1).all()  # whole test list scored
    assert fold["war"] == pytest.approx(np.trace(cm) / 7)
    assert fold["uar"] == pytest.approx(np.trace(cm) / 7)  # one clip per class: UAR == WAR
    assert report["summary"]["uar_mean"] == pytest.approx(fold["uar"]) and report["summary"]["uar_std"] == 0
    with Image.open(report_dir / "confusion_fold1.png") as img:
        img.load()
        assert img.format == "PNG" and img.size == (790, 690)  # (7 * 0.7 + 3) x (7 * 0.7 + 2) in @ 100 dpi
        assert np.asarray(img.convert("L")).std() > 10  # drawn, not blank
    assert len((report_dir / "predictions_fold1.csv").read_text().splitlines()) == 8

    # All five folds through a {fold} pattern (the same checkpoint stands in for each fold here).
    for k in range(1, 6):
        (tmp_path / f"fold{k}").mkdir()
        (tmp_path / f"fold{k}" / "best.pt").write_bytes((out / "best.pt").read_bytes())
    pattern = str(tmp_path / "fold{fold}" / "best.pt")
    assert evaluate_main(["--checkpoint", pattern, "--dataset", "dfew", "--root", str(dfew), "--fold", "all",
                          "--num-workers", "0", "--no-progress", "--prepared-root", str(dfew / "prepared")]) == 0
    report = json.loads((tmp_path / "evaluation" / "report.json").read_text())
    uars = [report["folds"][f"fold{k}"]["uar"] for k in range(1, 6)]
    wars = [report["folds"][f"fold{k}"]["war"] for k in range(1, 6)]
    s = report["summary"]
    assert s["folds"] == 5
    assert s["uar_mean"] == pytest.approx(np.mean(uars)) and s["uar_std"] == pytest.approx(np.std(uars))
    assert s["war_mean"] == pytest.approx(np.mean(wars)) and s["war_std"] == pytest.approx(np.std(wars))
    assert np.array(s["pooled"]["confusion_matrix"]).sum() == 35
    assert (tmp_path / "evaluation" / "confusion_all.png").is_file()
    assert "UAR" in capsys.readouterr().out


def test_evaluate_ferv39k_with_scenes(tmp_path):
    root = tmp_path / "ferv"
    make_ferv39k(root, clips_per_class=1, size=24, scene_size=40)
    torch.manual_seed(5)  # the evaluation rebuilds the random tiny backbone under the checkpoint's seed
    model = build_model(PROFILE, "cpu")
    save_checkpoint(tmp_path / "ous.pt", model, PROFILE, epoch=0, extra={"num_frames": 3, "config": {"seed": 5}})
    assert evaluate_main(["--checkpoint", str(tmp_path / "ous.pt"), "--dataset", "ferv39k", "--root", str(root),
                          "--num-workers", "0", "--no-progress"]) == 0
    report = json.loads((tmp_path / "evaluation" / "report.json").read_text())
    fold = report["folds"]["test"]
    assert fold["num_frames"] == 3 and fold["samples"] == 7 and report["summary"]["folds"] == 1
    assert np.array(fold["confusion_matrix"]).sum(axis=1).tolist() == [1] * 7
    # The report equals a direct evaluation of the same model on the same clips.
    ds = ClipDataset(read_ferv39k(root, "test"), num_frames=3, face_size=model.face_size,
                     scene_size=model.scene_size, with_scene=True)
    direct = Trainer(model, None, progress=False).evaluate(DataLoader(ds, batch_size=4))
    assert fold["confusion_matrix"] == direct.scores.confusion.tolist()


def test_cli_errors_are_one_line_and_exit_2(dfew, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"profile": PROFILE, "dataset": {"kind": "dfew", "root": str(dfew), "fold": 1},
                                   "train": {"epoch": 3}}))
    assert train_main(["--config", str(bad)]) == 2
    assert "unknown keys ['epoch']" in capsys.readouterr().err
    assert evaluate_main(["--checkpoint", str(tmp_path / "x.pt"), "--dataset", "dfew", "--root", str(dfew),
                          "--fold", "all"]) == 2
    assert "pattern" in capsys.readouterr().err
    assert evaluate_main(["--checkpoint", str(tmp_path / "x.pt"), "--dataset", "dfew", "--root", str(dfew),
                          "--fold", "1"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert evaluate_main(["--checkpoint", str(tmp_path / "x.pt"), "--dataset", "dfew", "--root", str(dfew),
                          "--fold", "1", "--split-file", "t.csv"]) == 2
    assert "--split-file does not apply to dfew" in capsys.readouterr().err
    assert evaluate_main(["--checkpoint", str(tmp_path / "x.pt"), "--dataset", "dfew", "--root", str(dfew),
                          "--fold", "six"]) == 2
    assert "--fold 1..5 or --fold all, got six" in capsys.readouterr().err
    missing = _config(tmp_path / "m.yaml", tmp_path / "nowhere", tmp_path / "o", 1)
    assert train_main(["--config", str(missing), "--no-progress"]) == 2
    assert "set_1.csv does not exist" in capsys.readouterr().err


def test_config_defaults_and_coercion(tmp_path):
    cfg = TrainConfig.from_dict({"profile": "p", "dataset": {"root": "/d", "fold": "2"}, "train": {"lr": "1e-4"}})
    assert cfg.dataset.fold == 2 and cfg.train.lr == 1e-4
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.plateau_patience) == (60, 16, 5)
    assert cfg.train.plateau_factor == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match="fold must be 1..5"):
        TrainConfig.from_dict({"profile": "p", "dataset": {"root": "/d", "fold": 6}})
    with pytest.raises(ConfigError, match="train.amp: expected true or false"):
        TrainConfig.from_dict({"profile": "p", "dataset": {"root": "/d", "fold": 1}, "train": {"amp": "yes"}})
    with pytest.raises(ConfigError, match="'profile'"):
        TrainConfig.from_dict({"dataset": {"root": "/d", "fold": 1}})


def test_example_configs_parse():
    from emotion_perception.training import cli

    configs = {p.name: TrainConfig.from_yaml(p) for p in (Path(cli.__file__).parent / "configs").glob("*.yaml")}
    assert set(configs) == {"dfew_ous_fold1.yaml", "dfew_duse_fold1.yaml", "ferv39k_ous.yaml", "ferv39k_duse.yaml"}
    for name, cfg in configs.items():
        assert cfg.train.batch_size == 16 and cfg.train.epochs == 60
        if cfg.profile.startswith("duse"):  # the DuSE paper's recipe: Adam 1e-3 and its four augmentations
            assert cfg.train.lr == pytest.approx(1e-3)
            a = cfg.augment
            assert a.flip == 0.5 and a.crop_scale < 1 and a.rotation > 0 and a.colour_jitter > 0
        else:  # OUS: Adam 2e-3
            assert cfg.train.lr == pytest.approx(2e-3)
    # OUS on DFEW reads the scene stream that prepare-dfew makes from the original videos.
    dfew_ous = configs["dfew_ous_fold1.yaml"].dataset
    assert dfew_ous.prepared_root and not dfew_ous.scene_from_face


@pytest.mark.slow
def test_loop_learns_a_separable_set(tmp_path):
    """Colour-coded classes: the training loss must fall and the clips end up classified."""
    torch.manual_seed(0)
    make_dfew(tmp_path, clips_per_class=2, frames=(4, 8), size=32)
    records = read_dfew(tmp_path, 1, "train")
    model = build_model(PROFILE, "cpu")
    kw = dict(num_frames=4, face_size=model.face_size, scene_size=model.scene_size, with_scene=True,
              scene_from_face=True)
    train = DataLoader(ClipDataset(records, train=True, **kw), batch_size=7, shuffle=True)
    same = DataLoader(ClipDataset(records, **kw), batch_size=14)
    criterion = make_criterion(model)
    assert isinstance(criterion, AlphaSwitchCriterion)
    trainer = Trainer(model, torch.optim.Adam(trainable_parameters(model), lr=2e-3), criterion=criterion,
                      progress=False)
    before = trainer.evaluate(same)
    assert criterion.running is None  # evaluation leaves the α switch alone
    losses = [trainer.train_epoch(train)["contrastive"] for _ in range(8)]
    after = trainer.evaluate(same)
    assert losses[-1] < 0.5 * losses[0]
    assert after.loss < 0.5 * before.loss
    assert after.scores.war >= 0.85 and after.scores.samples == 14


def test_cross_entropy_fallback_for_models_without_criterion():
    class Linear(torch.nn.Module):
        kind = "custom"

    criterion = make_criterion(Linear())
    assert isinstance(criterion, CrossEntropyCriterion)
    with pytest.raises(ValueError, match="α-switch"):
        make_criterion(Linear(), alpha=0.5)
    duse = type("DuSE", (torch.nn.Module,), {"kind": "duse"})()
    with pytest.raises(ValueError, match="α-switch"):  # DuSE trains on the contrastive loss alone
        make_criterion(duse, alpha=0.5)
    ous = type("OUS", (torch.nn.Module,), {"kind": "ous", "head_config": {"alpha": 1.0}})()
    assert make_criterion(ous, alpha=0.25).alpha == 0.25 and make_criterion(ous).alpha == 1.0
    from emotion_perception.models.base import HeadOutput

    logits = torch.tensor([[4.0, 0, 0, 0, 0, 0, 0]])
    loss, parts = criterion(HeadOutput(logits, torch.tensor([[0.0, 0.0, 5.0]])), torch.tensor([0]), torch.tensor([2]))
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0])) + torch.nn.functional.cross_entropy(
        torch.tensor([[0.0, 0.0, 5.0]]), torch.tensor([2]))
    assert loss.item() == pytest.approx(expected.item()) and set(parts) == {"ce", "polarity"}
