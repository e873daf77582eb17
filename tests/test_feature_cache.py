"""The frozen-feature cache (training/feature_cache.py), in one process, on fake DFEW / FERV39k."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from fake_datasets import make_dfew, make_ferv39k, write_frames

from emotion_perception.models.registry import build_model
from emotion_perception.training.augment import AugmentConfig
from emotion_perception.training.cli import evaluate_main, train_main
from emotion_perception.training.config import TrainConfig
from emotion_perception.training.datasets import ClipDataset, read_ferv39k
from emotion_perception.training.feature_cache import (
    CacheMismatchError, CachedClipDataset, FeatureCache, build_cache, dataset_pin,
)
from emotion_perception.training.cache_job import run_cache
from emotion_perception.training.jobs import seed_everything

PROFILE = "tiny-test-ous"
SEED = 3


def _config(tmp_path, root, kind="ferv39k", profile=PROFILE, flip=0.5, **dataset):
    cfg = {
        "profile": profile, "device": "cpu", "seed": SEED, "out": str(tmp_path / "run"),
        "dataset": {"kind": kind, "root": str(root), "num_frames": 4, "val_fraction": 0.34,
                    "feature_cache": str(tmp_path / "cache"), **dataset},
        "train": {"epochs": 1, "batch_size": 4, "num_workers": 0},
        "augment": {"flip": flip},
    }
    path = tmp_path / f"{profile}-{flip}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def ferv(tmp_path_factory):
    """Fake FERV39k: 24-px face crops and 40-px scene frames (a real scene stream), 5..12 frames;
    2 training clips and 1 test clip per class."""
    root = tmp_path_factory.mktemp("ferv")
    make_ferv39k(root, clips_per_class=2, size=24, scene_size=40)
    return root


def _model():
    seed_everything(SEED)  # the random tiny backbone the cache command builds under the config's seed
    return build_model(PROFILE, "cpu")


def test_cache_round_trip_is_bit_exact_and_sampling_matches_pixels(ferv, tmp_path):
    model = _model()
    records = read_ferv39k(ferv, "train") + read_ferv39k(ferv, "test")
    # A tiny shard size spreads the 21 clips over several shard files.
    manifest = build_cache(tmp_path / "cache", model, records, [dataset_pin("ferv39k", ferv, {})], flips=2,
                           device=torch.device("cpu"), shard_bytes=60_000, progress=False)
    assert len({c["shard"] for c in manifest["clips"].values()}) > 2
    cache = FeatureCache(tmp_path / "cache")
    for record in records:
        everything = np.arange(len(record.face_frames))
        faces = ClipDataset._load(record, record.face_dir, record.face_frames, everything, 64)
        scene_all = np.arange(len(record.scene_frames))
        scenes = ClipDataset._load(record, record.scene_dir, record.scene_frames, scene_all, 64)
        for flip in (False, True):
            f, s = (np.ascontiguousarray(x[:, :, ::-1]) if flip else x for x in (faces, scenes))
            live_face = model.encode_faces(torch.from_numpy(f))
            live_scene = model.encode_scenes(torch.from_numpy(s))
            assert torch.equal(cache.rows(record.name, "face", flip, everything), live_face)
            assert torch.equal(cache.rows(record.name, "scene", flip, scene_all), live_scene)

    # Train-time draws (random frames, flips) and test-time segment middles pick the very frames the
    # pixel dataset loads: the cached item equals the live encoding of the pixel item.
    flipped, some = 0, records[::2]
    for train in (True, False):
        kw = dict(num_frames=8, with_scene=True, train=train, augment=AugmentConfig(flip=0.5))
        pixels = ClipDataset(some, face_size=64, scene_size=64, **kw)
        cached = CachedClipDataset(some, cache, **kw)
        for i in range(len(some)):
            torch.manual_seed(100 + i)
            live = pixels[i]
            torch.manual_seed(100 + i)
            item = cached[i]
            torch.manual_seed(100 + i)
            flipped += int(pixels.draw(i).augment.flip) if train else 0
            mask = live["mask"]
            assert torch.equal(item["mask"], mask) and item["label"] == live["label"]
            assert torch.allclose(item["face"][mask], model.encode_faces(live["face"][mask]), atol=1e-5)
            assert torch.allclose(item["scene"][mask], model.encode_scenes(live["scene"][mask]), atol=1e-5)
            assert not item["face"][~mask].any()  # padding slots: zeros, masked out by the head
            with torch.no_grad():
                logits = model.forward_window(item["face"][None], mask[None], item["scene"][None], mask[None])
                direct = model(live["face"][None], mask[None], live["scene"][None])
            assert torch.allclose(logits.logits, direct.logits, atol=1e-4)
    assert 0 < flipped < len(some)  # both flip states were exercised


def test_stale_or_unusable_cache_is_one_clear_error(ferv, tmp_path, capsys):
    config = _config(tmp_path, ferv, flip=0.0)
    run_cache(TrainConfig.from_yaml(config), progress=False)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["flips"] == 1 and manifest["frames"] == "all" and len(manifest["clips"]) == 21
    assert train_main(["--config", str(config), "--no-progress"]) == 0  # the matching cache trains

    def refused(path, *needles):
        assert train_main(["--config", str(path), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(n in err for n in needles), err

    # Training with flips needs the flipped features.
    refused(_config(tmp_path, ferv, flip=0.5), "stale feature cache", "flips: cache has 1")
    # Another backbone (here: another seed of the random tiny one) is another encoder.
    other_seed = yaml.safe_load(config.read_text())
    other_seed["seed"] = SEED + 1
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(other_seed))
    refused(tmp_path / "seed.yaml", "backbone_sha256")
    # Another dataset root.
    moved = tmp_path / "moved"
    shutil.copytree(ferv, moved)
    refused(_config(tmp_path, moved, flip=0.0), "dataset", "is not one the cache was built from")
    # A clip whose frames changed, and a clip the cache never saw.
    clip = moved / "2_ClipsforFaceCrop" / "Interview" / "Happy" / "train0000"
    sorted(clip.iterdir())[-1].unlink()
    for stream in ("2_ClipsforFaceCrop", "3_ClipsforScenImages"):
        write_frames(moved / stream / "Interview" / "Happy" / "extra", 5, (0, 220, 255))
    rows = (moved / "4_setups" / "All_scenes" / "train_All.csv").read_text()
    (moved / "4_setups" / "All_scenes" / "train_All.csv").write_text(rows + "Interview/Happy/extra Happy\n")
    with pytest.raises(CacheMismatchError, match="1 clips not in the cache.*1 clips changed since caching"):
        FeatureCache(tmp_path / "cache").check(
            _model(), read_ferv39k(moved, "train"), dataset_pin("ferv39k", ferv, {}), flips=1, amp=False
        )
    # A cache folder without its manifest is unfinished; an existing cache is not overwritten.
    with pytest.raises(ValueError, match="already holds a feature cache"):
        run_cache(TrainConfig.from_yaml(config), progress=False)
    (tmp_path / "cache" / "manifest.json").unlink()
    refused(config, "unfinished (no manifest)")


def test_uncacheable_configs_are_refused_in_one_line(ferv, tmp_path, capsys):
    rotating = yaml.safe_load(_config(tmp_path, ferv).read_text())
    rotating["augment"]["rotation"] = 10.0
    (tmp_path / "rotating.yaml").write_text(yaml.safe_dump(rotating))
    for config, needle in ((_config(tmp_path, ferv, profile="tiny-test-duse"), "DuSE cannot use the feature cache"),
                           (tmp_path / "rotating.yaml", "augment.rotation draws new pixels every epoch")):
        for argv in (["cache", "--config"], ["--config"]):
            assert train_main([*argv, str(config), "--no-progress"]) == 2
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and needle in err, err


def test_zero_shot_evaluation_reads_the_cache(tmp_path):
    root = tmp_path / "dfew"
    make_dfew(root, clips_per_class=1, frames=(3, 9), size=32)
    config = _config(tmp_path, root, kind="dfew", profile="tiny-test-zeroshot", flip=0.0, fold=1,
                     scene_from_face=True)
    cfg = TrainConfig.from_yaml(config)
    cfg.seed = 0  # emotion-evaluate builds a model without checkpoint under seed 0
    run_cache(cfg, splits=("test",), progress=False)
    common = ["--profile", "tiny-test-zeroshot", "--dataset", "dfew", "--root", str(root), "--fold", "1",
              "--num-frames", "4", "--num-workers", "0", "--no-progress", "--scene-from-face"]
    assert evaluate_main([*common, "--out", str(tmp_path / "pixels")]) == 0
    assert evaluate_main([*common, "--out", str(tmp_path / "cached"), "--feature-cache", str(tmp_path / "cache")]) == 0
    pixels, cached = (json.loads((tmp_path / d / "report.json").read_text())["folds"]["fold1"]
                      for d in ("pixels", "cached"))
    assert cached["samples"] == 7 and cached["confusion_matrix"] == pixels["confusion_matrix"]
    a, b = ((tmp_path / d / "predictions_fold1.csv").read_text().splitlines() for d in ("pixels", "cached"))
    assert [r.split(",")[:3] for r in a] == [r.split(",")[:3] for r in b]
