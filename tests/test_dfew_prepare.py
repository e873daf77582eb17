"""DFEW's scene stream: prepare-dfew decodes the original videos into scene frames and face crops
of the very same frames; the reader pairs them; a scene model never silently gets the face."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from fake_datasets import NO_FACE_EVERY, BlobDetector, make_dfew, make_ferv39k, marker_level, write_frames

from emotion_perception.training.cli import train_main
from emotion_perception.training.datasets import ClipDataset, DatasetError, read_dfew, read_ferv39k
from emotion_perception.training.prepare_dfew import prepare_dfew

FACE = 48


@pytest.fixture(scope="module")
def dfew(tmp_path_factory):
    """Fake DFEW with original videos (clip 3 shows no face), prepared with the square detector."""
    root = tmp_path_factory.mktemp("dfew")
    make_dfew(root, clips_per_class=1, frames=(8, 14), originals=True, faceless=(3,))
    counts = prepare_dfew(root, root / "prepared", BlobDetector(), progress=False, face_size=FACE)
    assert counts == {"videos": 14, "skipped": 0, "prepared": 14, "no_face": 1, "unreadable": 0}
    return root


def _centre(img: np.ndarray, cx: int, cy: int, r: int = 2) -> float:
    return float(img[cy - r:cy + r, cx - r:cx + r].mean())


def _video_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            return frames
        frames.append(bgr)


def test_faces_and_scenes_come_from_the_same_decoded_frame(dfew):
    prepared = dfew / "prepared"
    n = len(_video_frames(dfew / "Clip" / "original" / "00001.mp4"))
    names = sorted(p.name for p in (prepared / "faces" / "00001").iterdir())
    assert names == sorted(p.name for p in (prepared / "scenes" / "00001").iterdir())
    # Frames without a face are left out of both streams; the others keep their frame number.
    assert names == [f"{k:05d}.jpg" for k in range(1, n + 1) if k % NO_FACE_EVERY]
    levels = []
    for name in names:
        k = int(name.split(".")[0])
        face = cv2.imread(str(prepared / "faces" / "00001" / name), cv2.IMREAD_GRAYSCALE)
        scene = cv2.imread(str(prepared / "scenes" / "00001" / name), cv2.IMREAD_GRAYSCALE)
        assert face.shape == (FACE, FACE) and scene.shape == (72, 96)  # a crop and the whole frame
        x0 = 16 + 2 * (k % 16)  # where the fake video put the square in frame k
        # The grey block at the square's centre encodes the frame number in both streams.
        assert _centre(face, FACE // 2, FACE // 2) == pytest.approx(marker_level(k), abs=6)
        assert _centre(scene, x0 + 15, 35) == pytest.approx(marker_level(k), abs=6)
        levels.append(marker_level(k))
    assert len(set(levels)) == len(levels)  # a one-frame shift would show


def test_reader_pairs_prepared_frames_and_items_differ_by_stream(dfew):
    records = read_dfew(dfew, 1, "train", prepared_root=dfew / "prepared")
    assert [r.name for r in records] == [str(i) for i in (1, 3, 5, 7, 9, 11, 13)]
    paired = records[0]
    assert paired.face_dir == dfew / "prepared" / "faces" / "00001"
    assert paired.scene_dir == dfew / "prepared" / "scenes" / "00001"
    assert paired.face_frames == paired.scene_frames
    # No face anywhere in clip 3: DFEW's own crops are its face stream, its scene is every frame.
    faceless = records[1]
    assert faceless.face_dir == dfew / "Clip" / "clip_224x224" / "00003"
    assert len(faceless.scene_frames) == len(_video_frames(dfew / "Clip" / "original" / "00003.mp4"))

    item = ClipDataset(records, num_frames=4, face_size=FACE, scene_size=FACE, with_scene=True)[0]
    face, scene = item["face"].numpy().astype(int), item["scene"].numpy().astype(int)
    assert np.abs(face - scene).mean() > 30  # the scene is not the face crop
    for slot in range(4):  # each slot's face and scene show the same frame's marker
        face_level = _centre(face[slot].mean(-1), FACE // 2, FACE // 2)
        k = round((face_level - 20) / 14)
        scene_frame = scene[slot].mean(-1)
        columns = np.nonzero((np.abs(scene_frame - np.median(scene_frame)) > 25).sum(0) > 5)[0]
        x0 = round(columns[0] * 96 / FACE)  # the square's left edge in the video
        assert abs((x0 - 16) / 2 % 16 - k) < 1, (slot, x0, k)


def test_prepared_clip_that_is_missing_or_unpaired_names_the_csv_line(dfew, tmp_path):
    broken = tmp_path / "prepared"
    shutil.copytree(dfew / "prepared", broken)
    shutil.rmtree(broken / "scenes" / "00005")
    with pytest.raises(DatasetError, match=r"set_1.csv:4: video '5' was not prepared"):
        read_dfew(dfew, 1, "train", prepared_root=broken)
    shutil.copytree(dfew / "prepared" / "scenes" / "00005", broken / "scenes" / "00005")
    next(iter((broken / "faces" / "00007").iterdir())).unlink()
    with pytest.raises(DatasetError, match=r"set_1.csv:5: .*do not pair frame by frame"):
        read_dfew(dfew, 1, "train", prepared_root=broken)
    with pytest.raises(DatasetError, match="not both"):
        read_dfew(dfew, 1, "train", prepared_root=broken, scenes_root=broken / "scenes")


def test_scene_model_refuses_the_face_as_its_scene(dfew, tmp_path):
    plain = read_dfew(dfew, 1, "train")  # DFEW's face crops alone
    with pytest.raises(DatasetError, match="7 of 7 clips have no scene frames.*prepare-dfew.*scene_from_face"):
        ClipDataset(plain, num_frames=4, face_size=FACE, with_scene=True)
    item = ClipDataset(plain, num_frames=4, face_size=FACE, scene_size=FACE, with_scene=True, scene_from_face=True)[0]
    assert np.array_equal(item["scene"], item["face"])  # the explicit opt-in
    assert "scene" not in ClipDataset(plain, num_frames=4, face_size=FACE, with_scene=False)[0]  # face-only model
    ferv = tmp_path / "ferv"
    make_ferv39k(ferv, clips_per_class=1)
    shutil.rmtree(ferv / "3_ClipsforScenImages")
    with pytest.raises(DatasetError, match="no scene frames"):
        ClipDataset(read_ferv39k(ferv, "train"), num_frames=4, face_size=FACE, with_scene=True)

    # The training CLI says the same in one line.
    import yaml

    cfg = {"profile": "tiny-test-ous", "device": "cpu",
           "dataset": {"kind": "dfew", "root": str(dfew), "fold": 1, "num_frames": 4, "val_fraction": 0.3},
           "train": {"epochs": 1, "num_workers": 0}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert train_main(["--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2


def test_prepare_cli_with_the_real_opencv_detector_resumes(astronaut, tmp_path, capsys):
    """The project's OpenCV detector finds the face in every frame that shows it; a rerun skips done clips."""
    video = tmp_path / "dfew" / "Clip" / "original" / "00042.mp4"
    video.parent.mkdir(parents=True)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (224, 160))
    photo = cv2.cvtColor(cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    for k in range(6):
        frame = np.full((160, 224, 3), 40, np.uint8)
        if k != 3:  # frame 4 shows nobody
            frame[:, 8 * k:8 * k + 160] = photo
        writer.write(frame)
    writer.release()
    (tmp_path / "dfew" / "Clip" / "original" / "notes.txt").write_text("not a video")
    out = tmp_path / "prepared"
    args = ["prepare-dfew", "--root", str(tmp_path / "dfew"), "--out", str(out), "--profile", "tiny-test-ous",
            "--detector", "opencv", "--device", "cpu", "--face-size", "64", "--no-progress"]
    assert train_main(args) == 0
    assert "1 videos prepared (0 without a face, 0 unreadable), 0 already done" in capsys.readouterr().out
    faces = sorted(p.name for p in (out / "faces" / "00042").iterdir())
    assert faces == ["00001.jpg", "00002.jpg", "00003.jpg", "00005.jpg", "00006.jpg"]
    assert faces == sorted(p.name for p in (out / "scenes" / "00042").iterdir())
    face = cv2.imread(str(out / "faces" / "00042" / "00001.jpg"))
    assert face.shape == (64, 64, 3) and face.std() > 20  # a crop of the photo, not the grey border
    assert (out / "clips.csv").read_text().splitlines() == ["id,frames,frames_with_face", "00042,6,5"]
    assert train_main(args) == 0
    assert "0 videos prepared (0 without a face, 0 unreadable), 1 already done" in capsys.readouterr().out
    assert train_main(["prepare-dfew", "--root", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "Clip/original does not exist" in capsys.readouterr().err


def test_unreadable_video_is_recorded_and_then_refused_by_the_reader(tmp_path):
    root = tmp_path / "dfew"
    (root / "Clip" / "original").mkdir(parents=True)
    (root / "Clip" / "original" / "00001.mp4").write_bytes(b"not a video")
    write_frames(root / "Clip" / "clip_224x224" / "00001", 3, (0, 0, 0))
    (root / "EmoLabel_DataSplit" / "test(single-labeled)").mkdir(parents=True)
    (root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_1.csv").write_text("video_name,label\n1,1\n")
    counts = prepare_dfew(root, root / "prepared", BlobDetector(), progress=False)
    assert counts["unreadable"] == 1 and (root / "prepared" / "clips.csv").read_text().endswith("00001,0,0\n")
    with pytest.raises(DatasetError, match="set_1.csv:2: video '1' was not prepared"):
        read_dfew(root, 1, "test", prepared_root=root / "prepared")
