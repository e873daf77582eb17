"""The emotion-perception command line: help, record, one-line errors, and the README main job."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from emotion_perception.cli import main
from emotion_perception.evaluation import demo
from emotion_perception.evaluation.bags import COMPRESSED_IMAGE, BagReader, write_image_bag
from emotion_perception.types import Frame


def _video(path, n=10, fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(n):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return path


def _one_line_error(capsys, argv, *needles):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("command, text", [
    ("record", "video file or a camera"), ("run", "--rate"), ("eval", "half-open ranges"), ("demo", "astronaut"),
])
def test_help_explains_each_command(capsys, command, text):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert text in " ".join(capsys.readouterr().out.split())


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(c in out for c in ("record", "run", "eval", "demo"))


def test_record_video_to_sqlite_jpeg(tmp_path, capsys):
    video = _video(tmp_path / "clip.avi")
    out = tmp_path / "bag"
    assert main(["record", str(video), str(out), "--storage", "sqlite3", "--format", "jpeg",
                 "--start-time", "1700000000.5", "--frame-id", "head", "--bag-version", "9"]) == 0
    assert "recorded 10 frames" in capsys.readouterr().out
    with BagReader(out) as bag:
        assert bag.topics == {"/camera/image_raw/compressed": COMPRESSED_IMAGE}
        frames = [f for f, _ in bag.frames()]
    assert [f.stamp_ns for f in frames] == [1_700_000_000_500_000_000 + i * 100_000_000 for i in range(10)]
    assert {f.frame_id for f in frames} == {"head"}
    means = np.array([f.image.mean() for f in frames])  # two lossy codecs (MJPG file, jpeg bag): near
    np.testing.assert_allclose(means, [20 * i for i in range(10)], atol=4)


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    bag = tmp_path / "bag"
    write_image_bag([Frame(np.zeros((60, 80, 3), np.uint8), i) for i in range(20)], bag, "/front/image_raw")
    _one_line_error(capsys, ["run", str(bag), "--topic", "/camera/image_raw", "--out", str(tmp_path / "o")],
                    "no topic /camera/image_raw", "/front/image_raw (Image)")

    data = bag / "bag.mcap"
    data.write_bytes(data.read_bytes()[:3000])
    _one_line_error(capsys, ["run", str(bag), "--out", str(tmp_path / "o")], "truncated or corrupt")

    (tmp_path / "not_a_video.mp4").write_bytes(b"\x00" * 1000)
    _one_line_error(capsys, ["record", str(tmp_path / "not_a_video.mp4"), str(tmp_path / "b2")], "cannot read video")
    assert not (tmp_path / "b2").exists()

    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"frame": 0, "stamp_ns": 0, "processed": True, "latency_ms": 1.0, "faces": []}) + "\n")
    (tmp_path / "l1.csv").write_text("0,5,happy\n5,9,bored\n")
    _one_line_error(capsys, ["eval", str(results), "--labels", str(tmp_path / "l1.csv")], "l1.csv:2", "'bored'")
    (tmp_path / "l2.csv").write_text("0,5,happy\n3,9,sad\n")
    _one_line_error(capsys, ["eval", str(results), "--labels", str(tmp_path / "l2.csv")], "overlapping ranges")


@pytest.mark.slow
def test_readme_main_job_demo(tmp_path, capsys):
    """`emotion-perception demo --out DIR`: the README's main command, end to end on CPU."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert f"model profile: {run['profile']}" in stdout and "models/fetch" in stdout
    assert f"report: {out / 'report' / 'report.html'}" in stdout
    assert run["frames"] == 72 and run["processed"] == 72 and run["dropped"] == 0

    report = json.loads((out / "report" / "report.json").read_text())
    assert report["labelled_samples"] == 60  # the 60 face frames are labelled happy
    assert report["scored_samples"] >= 50, "the face should be found in most of the face frames"
    assert report["run"]["profile"] == run["profile"]
    for name in ("report.md", "confusion.png", "timeline.png", "latency.png"):
        assert (out / "report" / name).is_file()
    with BagReader(out / "results") as bag:
        assert bag.count("/camera/image_raw") == 72 and bag.count("/emotions") == 72
    cap = cv2.VideoCapture(str(out / "annotated.webm"))  # VP8: plays in browsers
    assert cap.isOpened() and cap.read()[0]
    assert cap.get(cv2.CAP_PROP_FPS) == demo.FPS  # the recording's pace, not 30 fps
    cap.release()

    # running the demo again replaces its own outputs (and only those) instead of failing on them
    (out / "notes.txt").write_text("mine")
    demo.prepare(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
