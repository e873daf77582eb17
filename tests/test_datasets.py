"""Dataset readers (DFEW, FERV39k layouts), frame ordering and clip sampling."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from fake_datasets import DFEW_COLOURS, make_dfew, make_ferv39k, write_dfew_csv, write_frames

from emotion_perception.labels import class_id
from emotion_perception.training.augment import AugmentConfig
from emotion_perception.training.datasets import (
    ClipDataset,
    DatasetError,
    read_dfew,
    read_ferv39k,
    read_split,
    stratified_split,
)
from emotion_perception.training.sampling import (
    frame_names,
    matching_indices,
    natural_sorted,
    sample_indices,
    segment_bounds,
)

# ------------------------------------------------------------------------------- ordering


def test_natural_sort_orders_numbers_by_value():
    names = ["frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "frame_100.jpg", "frame_20.jpg"]
    assert natural_sorted(names) == ["frame_1.jpg", "frame_2.jpg", "frame_10.jpg", "frame_20.jpg", "frame_100.jpg"]
    # DFEW-style zero padding and mixed prefixes still sort by value.
    assert natural_sorted(["00001_10.jpg", "00001_9.jpg", "00001_010.png"])[0] == "00001_9.jpg"


def test_frame_names_keeps_only_images():
    names = ["b_2.png", "a.txt", ".hidden_1.jpg", "b_10.JPG", "Thumbs.db", "b_1.jpeg"]
    assert frame_names(names) == ["b_1.jpeg", "b_2.png", "b_10.JPG"]


# ------------------------------------------------------------------------------- sampling


def test_test_time_sampling_takes_segment_middles():
    idx, mask = sample_indices(32, 16)
    assert idx.tolist() == list(range(1, 32, 2)) and mask.all()
    idx, _ = sample_indices(16, 16)
    assert idx.tolist() == list(range(16))
    # 40 frames / 16 segments: edges 0,2,5,7,10,12,15,17,20,22,25,27,30,32,35,37,40.
    idx, _ = sample_indices(40, 16)
    assert idx.tolist() == [1, 3, 6, 8, 11, 13, 16, 18, 21, 23, 26, 28, 31, 33, 36, 38]
    idx, _ = sample_indices(7, 2)  # segments [0,3) and [3,7)
    assert idx.tolist() == [1, 5]


def test_training_offsets_stay_in_their_segments_and_cover_them():
    n, t = 53, 16
    bounds = segment_bounds(n, t)
    assert bounds[0, 0] == 0 and bounds[-1, 1] == n and (bounds[1:, 0] == bounds[:-1, 1]).all()
    rng = np.random.default_rng(1)
    draws = np.stack([sample_indices(n, t, train=True, rng=rng)[0] for _ in range(400)])
    assert (draws >= bounds[:, 0]).all() and (draws < bounds[:, 1]).all()
    for s in range(t):  # every frame of every segment gets drawn at some point
        assert set(draws[:, s]) == set(range(bounds[s, 0], bounds[s, 1]))
    again = sample_indices(n, t, train=True, rng=np.random.default_rng(7))[0]
    assert again.tolist() == sample_indices(n, t, train=True, rng=np.random.default_rng(7))[0].tolist()


@pytest.mark.parametrize("train", [False, True])
def test_short_clip_is_padded_not_repeated(train):
    idx, mask = sample_indices(5, 16, train=train, rng=np.random.default_rng(0))
    assert idx.tolist() == [0, 1, 2, 3, 4] + [-1] * 11
    assert mask.tolist() == [True] * 5 + [False] * 11


def test_sampling_rejects_empty_clip():
    with pytest.raises(ValueError, match="empty clip"):
        sample_indices(0, 16)


def test_matching_indices_pairs_same_relative_time():
    idx, mask = sample_indices(10, 4)
    assert matching_indices(idx, mask, 10, 10).tolist() == idx.tolist()
    assert matching_indices(np.array([0, 9, -1]), np.array([True, True, False]), 10, 19).tolist() == [0, 18, -1]


# --------------------------------------------------------------------------------- DFEW


def test_dfew_reader_maps_labels_and_padded_ids(tmp_path):
    splits = make_dfew(tmp_path, clips_per_class=1, frames=(3, 3))
    records = read_dfew(tmp_path, 1, "train")
    assert len(records) == 7
    # DFEW 1..7 = happy, sad, neutral, angry, surprise, disgust, fear -> canonical by name.
    expected = {cid: class_id(n) for cid, n in zip(range(1, 8), ["happy", "sad", "neutral", "angry",
                                                                 "surprise", "disgust", "fear"])}
    for (cid, label), r in zip(splits[1]["train"], records):
        assert r.name == str(cid) and r.face_dir.name == f"{cid:05d}"
        assert r.label == expected[label]
        assert r.source.endswith(f"set_1.csv:{records.index(r) + 2}")
    assert [r.label for r in records] == list(range(7))  # DFEW's order is the canonical order
    # A zero-padded id in the csv finds an unpadded folder too.
    write_frames(tmp_path / "Clip" / "clip_224x224" / "77", 2, (0, 0, 0))
    write_dfew_csv(tmp_path / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_2.csv", [("00077", 4)])
    (r,) = read_dfew(tmp_path, 2, "test")
    assert r.face_dir.name == "77" and r.label == class_id("angry")


def test_dfew_dataset_items(tmp_path):
    clip = tmp_path / "Clip" / "clip_224x224" / "00001"
    write_frames(clip, 12, DFEW_COLOURS[1], size=24, ext=".png")  # frame_1..frame_12, marker = k
    write_frames(tmp_path / "Clip" / "clip_224x224" / "00002", 3, DFEW_COLOURS[6], size=24, ext=".png")
    write_dfew_csv(tmp_path / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_3.csv", [(1, 1), (2, 6)])
    records = read_dfew(tmp_path, 3, "test")
    assert records[0].face_frames[:3] == ("frame_1.png", "frame_2.png", "frame_3.png")
    assert records[0].face_frames[-1] == "frame_12.png"

    ds = ClipDataset(records, num_frames=4, face_size=24, scene_size=24, scene_from_face=True)
    item = ds[0]
    assert item["face"].dtype == torch.uint8 and item["face"].shape == (4, 24, 24, 3)
    # 12 frames / 4 segments: middles 1, 4, 7, 10 -> frames 2, 5, 8, 11 (marker = frame number).
    assert item["face"][:, 0, 0, 0].tolist() == [2, 5, 8, 11]
    assert item["mask"].tolist() == [True] * 4
    assert torch.equal(item["scene"], item["face"])  # scene_from_face: the crop stands in for the scene
    assert item["label"].item() == 0 and item["polarity"].item() == 2  # happy -> positive

    short = ds[1]  # 3 frames into 4 slots: each once, then padding
    assert short["mask"].tolist() == [True, True, True, False]
    assert short["face"][:3, 0, 0, 0].tolist() == [1, 2, 3]
    assert short["face"][3].sum() == 0
    assert short["label"].item() == class_id("disgust") and short["polarity"].item() == 0

    resized = ClipDataset(records, num_frames=4, face_size=16, scene_size=32, with_scene=True, scene_from_face=True)[0]
    assert resized["face"].shape == (4, 16, 16, 3) and resized["scene"].shape == (4, 32, 32, 3)
    assert "scene" not in ClipDataset(records, num_frames=4, face_size=16, with_scene=False)[0]
    # Colour survives the round trip (RGB order): happy's BGR (0, 220, 255) -> RGB (255, 220, 0).
    mean = item["face"][:, 8:, 8:].float().mean(dim=(0, 1, 2))
    assert torch.allclose(mean, torch.tensor([255.0, 220.0, 0.0]), atol=12)


def test_training_items_vary_and_flip(tmp_path):
    clip = tmp_path / "Clip" / "clip_224x224" / "00001"
    write_frames(clip, 40, DFEW_COLOURS[1], size=24, ext=".png")
    write_dfew_csv(tmp_path / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv", [(1, 1)])
    records = read_dfew(tmp_path, 1, "train")
    ds = ClipDataset(records, num_frames=8, face_size=24, with_scene=False, train=True, augment=AugmentConfig(flip=0.5))
    torch.manual_seed(0)
    bounds = segment_bounds(40, 8)
    seen, flips = set(), 0
    for _ in range(30):
        face = ds[0]["face"]
        corner, flipped_corner = face[:, 0, 0, 0], face[:, 0, -1, 0]
        flipped = bool((corner > 60).all())  # marker moved to the other corner: the clip was flipped
        frames = (flipped_corner if flipped else corner).numpy() - 1
        assert (frames >= bounds[:, 0]).all() and (frames < bounds[:, 1]).all()
        seen.add(tuple(frames))
        flips += flipped
    assert len(seen) > 5 and 0 < flips < 30


# ------------------------------------------------------------------------------ FERV39k


@pytest.mark.parametrize("header", [False, True])
def test_ferv39k_reader_pairs_faces_and_scenes(tmp_path, header):
    splits = make_ferv39k(tmp_path, clips_per_class=2, header=header)
    records = read_ferv39k(tmp_path, "train")
    assert len(records) == 14
    for (rel, name), r in zip(splits["train"], records):
        assert r.name == rel and r.label == class_id(name)
        assert r.face_dir == tmp_path / "2_ClipsforFaceCrop" / rel
        assert r.scene_dir == tmp_path / "3_ClipsforScenImages" / rel
        assert len(r.scene_frames) == len(r.face_frames)
    item = ClipDataset(records, num_frames=16, face_size=24, scene_size=40)[0]
    assert item["face"].shape == (16, 24, 24, 3) and item["scene"].shape == (16, 40, 40, 3)
    n = len(records[0].face_frames)
    assert item["mask"].sum().item() == n  # fake clips have 5..12 frames < 16: padded
    assert not torch.equal(item["scene"][0, :24, :24], item["face"][0])  # the scene is its own stream


def test_ferv39k_numeric_labels_comma_rows_and_overrides(tmp_path):
    faces, scenes = tmp_path / "faces", tmp_path / "scenes"
    write_frames(faces / "War/Fear/0001", 3, (0, 0, 0))
    write_frames(scenes / "War/Fear/0001", 5, (0, 0, 0), size=48)
    write_frames(faces / "War/Happy/0002", 3, (0, 0, 0))
    write_frames(scenes / "War/Happy/0002", 3, (0, 0, 0))
    split = tmp_path / "mine.csv"
    split.write_text("War/Fear/0001,2\nWar\\Happy\\0002 happy\n")  # id 2 = Fear in FERV39k's order
    records = read_ferv39k(tmp_path, "test", faces_root=faces, scenes_root=scenes, split_file=split)
    assert [r.label for r in records] == [class_id("fear"), class_id("happy")]
    assert records[1].face_dir == faces / "War/Happy/0002"
    item = ClipDataset(records, num_frames=4, face_size=16, scene_size=16)[0]
    assert item["mask"].tolist() == [True, True, True, False]
    # Without scene frames the face crops double as the scene.
    no_scene = read_ferv39k(tmp_path, "test", faces_root=faces, split_file=split, use_scenes=False)
    assert no_scene[0].scene_dir is None
    assert read_split("ferv39k", tmp_path, "test", faces_root=faces, split_file=split)[0].label == class_id("fear")


# ------------------------------------------------------------------------------ errors


def _dfew_with(tmp_path, rows, header="video_name,label", folders=(1,)):
    for cid in folders:
        write_frames(tmp_path / "Clip" / "clip_224x224" / f"{cid:05d}", 2, (0, 0, 0))
    path = tmp_path / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "rows, line, message",
    [
        (["1,1", "2,3"], 3, "clip folder for video '2' not found"),
        (["1,1", "1,9"], 3, "unknown DFEW label '9'"),
        (["1,happy"], 2, "unknown DFEW label 'happy'"),
        (["1,1", "1,2,3"], 3, "expected 'video_name,label'"),
        (["1,1", ",4"], 3, "expected 'video_name,label'"),
    ],
)
def test_dfew_bad_rows_name_file_and_line(tmp_path, rows, line, message):
    path = _dfew_with(tmp_path, rows)
    with pytest.raises(DatasetError, match=message) as e:
        read_dfew(tmp_path, 1, "train")
    assert f"{path}:{line}:" in str(e.value)


def test_dfew_empty_folder_bad_header_missing_files(tmp_path):
    path = _dfew_with(tmp_path, ["1,1", "3,2"])
    (tmp_path / "Clip" / "clip_224x224" / "00003").mkdir()
    (tmp_path / "Clip" / "clip_224x224" / "00003" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=re.escape(f"{path}:3: clip folder ") + ".*00003 holds no image frames"):
        read_dfew(tmp_path, 1, "train")
    _dfew_with(tmp_path, ["1,1"], header="name;label")
    with pytest.raises(DatasetError, match=re.escape(f"{path}:1: expected the header")):
        read_dfew(tmp_path, 1, "train")
    with pytest.raises(DatasetError, match="set_2.csv does not exist"):
        read_dfew(tmp_path, 2, "train")
    with pytest.raises(DatasetError, match="fold must be one of"):
        read_dfew(tmp_path, 6, "train")
    with pytest.raises(DatasetError, match="clip folder .*elsewhere does not exist"):
        read_dfew(tmp_path, 1, "train", clips_root=tmp_path / "elsewhere")


def test_unreadable_frame_names_clip_and_file(tmp_path):
    path = _dfew_with(tmp_path, ["1,1"])
    (tmp_path / "Clip" / "clip_224x224" / "00001" / "frame_1.jpg").write_bytes(b"not a jpeg")
    ds = ClipDataset(read_dfew(tmp_path, 1, "train"), num_frames=2, face_size=8, with_scene=False)
    with pytest.raises(DatasetError, match=re.escape(f"{path}:2: cannot read image ") + ".*frame_1.jpg"):
        ds[0]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("Action/Happy/train0000 Happy\nAction/Happy/x Contempt\n", 2, "unknown FERV39k label 'Contempt'"),
        ("Action/Happy/train0000 7\n", 1, "unknown FERV39k label '7'"),
        ("Action/Happy/train0000\n", 1, "expected '<clip path> <label>'"),
        ("\nAction/Happy/train0000 Happy extra\n", 2, "expected '<clip path> <label>'"),
        ("Action/Happy/missing Happy\n", 1, "clip folder .*missing does not exist"),
    ],
)
def test_ferv39k_bad_rows_name_file_and_line(tmp_path, text, line, message):
    write_frames(tmp_path / "2_ClipsforFaceCrop" / "Action/Happy/train0000", 2, (0, 0, 0))
    split = tmp_path / "bad.csv"
    split.write_text(text)
    with pytest.raises(DatasetError, match=message) as e:
        read_ferv39k(tmp_path, "train", split_file=split, use_scenes=False)
    assert f"{split}:{line}:" in str(e.value)


def test_ferv39k_missing_scene_folder_is_an_error(tmp_path):
    make_ferv39k(tmp_path, clips_per_class=1)
    rel = "Interview/Sad/train0000"
    for f in (tmp_path / "3_ClipsforScenImages" / rel).iterdir():
        f.unlink()
    (tmp_path / "3_ClipsforScenImages" / rel).rmdir()
    message = f"train_All.csv:\\d+: clip folder .*3_ClipsforScenImages/{rel} does not exist"
    with pytest.raises(DatasetError, match=message):
        read_ferv39k(tmp_path, "train")


# ----------------------------------------------------------------------- validation split


def test_stratified_split_is_seeded_disjoint_and_per_class(tmp_path):
    make_dfew(tmp_path, clips_per_class=10, frames=(2, 2))
    records = read_dfew(tmp_path, 1, "train")
    train, val = stratified_split(records, 0.2, seed=3)
    assert len(train) + len(val) == len(records) == 70
    assert not {r.name for r in train} & {r.name for r in val}
    assert np.bincount([r.label for r in val], minlength=7).tolist() == [2] * 7
    assert [r.name for r in stratified_split(records, 0.2, seed=3)[1]] == [r.name for r in val]
    assert [r.name for r in stratified_split(records, 0.2, seed=4)[1]] != [r.name for r in val]
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(records, 0.0, seed=0)


def test_loader_workers_match_in_process_loading(tmp_path):
    """Spawned workers give the same batches; a parallel cv2 call in the parent must not hang them."""
    import cv2

    from emotion_perception.training.datasets import clip_loader

    make_dfew(tmp_path, clips_per_class=1, frames=(3, 9), size=32)
    cv2.resize(np.zeros((512, 512, 3), np.uint8), (300, 300))  # starts OpenCV's pool in this process
    ds = ClipDataset(read_dfew(tmp_path, 1, "train"), num_frames=4, face_size=32, with_scene=False)
    inline = list(clip_loader(ds, 4, 0, shuffle=False))
    spawned = list(clip_loader(ds, 4, 1, shuffle=False))
    assert len(inline) == len(spawned) == 2
    for a, b in zip(inline, spawned):
        assert torch.equal(a["face"], b["face"]) and torch.equal(a["mask"], b["mask"])
        assert torch.equal(a["label"], b["label"])
