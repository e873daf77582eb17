"""Clip-consistent train-time augmentations: one draw per clip, every frame alike, none at test time."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from emotion_perception.training.augment import AugmentConfig, ClipDraw, apply_clip, draw_clip
from emotion_perception.training.datasets import ClipDataset, read_ferv39k

FULL = AugmentConfig(flip=0.5, crop_scale=0.6, rotation=15, colour_jitter=0.3)


@pytest.fixture()
def image():
    return np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def test_each_geometric_part_matches_an_independent_reference(image):
    frames = image[None]
    assert np.array_equal(apply_clip(frames, ClipDraw(flip=True))[0], image[:, ::-1])
    # +90 degrees turns the picture counter-clockwise, as torchvision's rotation does.
    assert np.array_equal(apply_clip(frames, ClipDraw(angle=90.0))[0], np.rot90(image, 1))
    # The centre half, resized back to 32 px (borders aside: the warp samples the real neighbours there).
    crop = apply_clip(frames, ClipDraw(box=(0.25, 0.25, 0.5, 0.5)))[0].astype(int)
    reference = cv2.resize(image[8:24, 8:24], (32, 32), interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(crop[2:-2, 2:-2] - reference[2:-2, 2:-2]).max() <= 1
    assert np.array_equal(apply_clip(frames, ClipDraw())[0], image)  # the identity draw changes nothing


def test_colour_parts_follow_the_colorjitter_definitions(image):
    frames = image[None]
    brighter = apply_clip(frames, ClipDraw(brightness=1.2))[0].astype(int)
    assert np.abs(brighter - np.clip(image * 1.2, 0, 255)).max() <= 1
    grey = apply_clip(frames, ClipDraw(saturation=0.0))[0].astype(int)
    luma = image @ np.array([0.299, 0.587, 0.114])
    assert np.abs(grey - luma[..., None]).max() <= 1  # saturation 0: the grey image in all channels
    flat = apply_clip(frames, ClipDraw(contrast=0.0))[0].astype(int)
    assert np.abs(flat - luma.mean()).max() <= 1  # contrast 0: the frame's grey mean everywhere


def test_one_draw_per_clip_is_applied_alike_to_every_valid_frame(image):
    clip = np.stack([image] * 5)
    clip[4] = 0  # a padding slot
    valid = np.array([True] * 4 + [False])
    rng = np.random.default_rng(3)
    outputs = []
    for _ in range(20):
        draw = draw_clip(FULL, rng)
        out = apply_clip(clip, draw, valid)
        assert all(np.array_equal(out[0], out[t]) for t in range(1, 4))  # one draw, every frame alike
        assert not out[4].any()  # padding stays padding
        outputs.append(out[0])
    # Clips get different draws, and nearly every draw changes the picture.
    assert len({o.tobytes() for o in outputs}) == 20
    assert sum(not np.array_equal(o, image) for o in outputs) >= 19
    draws = [draw_clip(FULL, np.random.default_rng(s)) for s in range(200)]
    assert 60 < sum(d.flip for d in draws) < 140
    assert all(abs(d.angle) <= 15 and d.box[2] * d.box[3] >= 0.6 - 1e-9 for d in draws)
    assert all(0.7 <= d.brightness <= 1.3 and abs(d.hue) <= 0.3 / 4 for d in draws)


def test_bad_strengths_are_refused():
    for bad in (AugmentConfig(flip=1.5), AugmentConfig(crop_scale=0.0), AugmentConfig(rotation=-1),
                AugmentConfig(colour_jitter=1.0)):
        with pytest.raises(ValueError, match="augment"):
            bad.validate()


def test_dataset_augments_training_clips_only_and_face_and_scene_alike(tmp_path):
    """FERV39k layout: each clip's frames are copies of one face and one scene image."""
    rng = np.random.default_rng(1)
    face, scene = rng.integers(0, 256, (32, 32, 3), np.uint8), rng.integers(0, 256, (48, 48, 3), np.uint8)
    for stream, img in (("2_ClipsforFaceCrop", face), ("3_ClipsforScenImages", scene)):
        folder = tmp_path / stream / "Action" / "Happy" / "c1"
        folder.mkdir(parents=True)
        for k in range(1, 7):
            cv2.imwrite(str(folder / f"{k}.png"), img)
    (tmp_path / "4_setups" / "All_scenes").mkdir(parents=True)
    (tmp_path / "4_setups" / "All_scenes" / "train_All.csv").write_text("Action/Happy/c1 Happy\n")
    records = read_ferv39k(tmp_path, "train")
    kw = dict(num_frames=4, face_size=32, scene_size=48, with_scene=True)

    test_item = ClipDataset(records, train=False, augment=FULL, **kw)[0]  # evaluation: never augmented
    raw_face = torch.from_numpy(cv2.cvtColor(face, cv2.COLOR_BGR2RGB))
    assert all(torch.equal(f, raw_face) for f in test_item["face"])

    train = ClipDataset(records, train=True, augment=AugmentConfig(flip=1.0, rotation=0.0), **kw)
    torch.manual_seed(0)
    item = train[0]
    raw_scene = torch.from_numpy(cv2.cvtColor(scene, cv2.COLOR_BGR2RGB))
    assert all(torch.equal(f, raw_face.flip(1)) for f in item["face"])  # the flip reaches every frame...
    assert all(torch.equal(s, raw_scene.flip(1)) for s in item["scene"])  # ...of both streams
    full = ClipDataset(records, train=True, augment=FULL, **kw)
    for _ in range(5):
        item = full[0]
        assert all(torch.equal(item["face"][0], f) for f in item["face"][1:])
        assert all(torch.equal(item["scene"][0], s) for s in item["scene"][1:])
