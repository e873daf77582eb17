"""Replay: results bag (+ copied images), JSON-lines, rates, drops, and partial results kept."""
from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine, coded_frame

from emotion_perception.evaluation import jobs
from emotion_perception.evaluation.bags import (COMPRESSED_IMAGE, EMOTION_ARRAY, IMAGE, STRING, BagError, BagReader,
                                                BagWriter, image_message, write_image_bag)
from emotion_perception.evaluation.replay import ResultSink, frame_items, replay
from emotion_perception.messages import array_msg_to_estimates

T0 = 1_700_000_000_000_000_000
CLASSES = [0, 0, 1, None, 2, 3, 4, 5, 6, 0]


def _frames(classes=CLASSES, period_ns=66_666_667):
    return [coded_frame(c, T0 + i * period_ns) for i, c in enumerate(classes)]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _sink(tmp_path, **kw):
    return ResultSink(tmp_path / "results", tmp_path / "results.jsonl", **kw)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_max_rate_writes_every_frame(tmp_path, storage):
    frames = _frames()
    summary = replay(ScriptedEngine(), frame_items(frames), _sink(tmp_path, storage=storage), progress=False)
    assert (summary.frames, summary.processed, summary.dropped, summary.faces) == (10, 10, 0, 9)
    assert summary.error is None and not summary.interrupted

    lines = _lines(tmp_path / "results.jsonl")
    assert [line["frame"] for line in lines] == list(range(10))
    assert [line["stamp_ns"] for line in lines] == [f.stamp_ns for f in frames]
    assert [line["faces"][0]["class_id"] if line["faces"] else None for line in lines] == CLASSES
    face = lines[0]["faces"][0]
    assert face["id"] == "face_1" and face["box"] == [4, 4, 20, 20] and len(face["probs"]) == 7
    assert face["person"] == "person_1"
    assert face["class"] == "happy" and face["polarity"] is None and lines[0]["latency_ms"] >= 0

    with BagReader(tmp_path / "results") as bag:
        assert bag.topics == {"/camera/image_raw/compressed": COMPRESSED_IMAGE, "/emotions": EMOTION_ARRAY,
                              "/emotions/latency_ms": "std_msgs/msg/Float64"}
        arrays = [(m, bag.deserialize(m)) for m in bag.messages(["/emotions"])]
        images = [f for f, _ in bag.frames()]
    assert [f.stamp_ns for f in images] == [f.stamp_ns for f in frames]
    assert [m.log_time_ns for m, _ in arrays] == [f.stamp_ns for f in frames]
    for (_, msg), frame, cls in zip(arrays, frames, CLASSES):
        ests = array_msg_to_estimates(msg)
        assert msg.header.frame_id == "cam"
        assert [e.class_id for e in ests] == ([] if cls is None else [cls])
        assert [e.person_id for e in ests] == ([] if cls is None else ["person_1"])  # the bag keeps person ids


def test_bag_input_is_copied_byte_for_byte_with_its_label_topic(tmp_path):
    frames = _frames()
    src = tmp_path / "input"
    with BagWriter(src, "sqlite3") as bag:
        bag.write("/label", STRING, T0, bag.store.types[STRING](data="happy"))
        for f in frames:
            msgtype, msg = image_message(bag.store, f.image, f.stamp_ns, "cam", "rgb8")
            bag.write("/head/image", msgtype, f.stamp_ns, msg)
    inp = jobs.open_input(str(src), None, "/label")
    summary = jobs.run(inp, ScriptedEngine(), tmp_path / "out", progress=False)
    assert summary.processed == 10

    with BagReader(src) as original, BagReader(tmp_path / "out" / "results") as copy:
        assert copy.topics["/head/image"] == IMAGE and copy.topics["/label"] == STRING
        want = [(m.log_time_ns, m.data) for m in original.messages(["/head/image", "/label"])]
        got = [(m.log_time_ns, m.data) for m in copy.messages(["/head/image", "/label"])]
    assert got == want
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["processed"] == 10 and run["input"].endswith("topic /head/image")


def test_recorded_rate_drops_stale_frames_when_the_engine_is_slow(tmp_path):
    frames = _frames([0] * 30, period_ns=10_000_000)  # 100 fps recording, engine takes 40 ms
    summary = replay(ScriptedEngine(delay=0.04), frame_items(frames), _sink(tmp_path), rate="recorded",
                     progress=False)
    assert summary.frames == 30
    assert summary.processed + summary.dropped == 30
    assert 2 <= summary.processed <= 15 and summary.dropped >= 15
    lines = _lines(tmp_path / "results.jsonl")
    assert sorted(line["frame"] for line in lines) == list(range(30))
    processed = sorted(line["frame"] for line in lines if line["processed"])
    assert processed[0] == 0 and processed[-1] == 29  # the newest frame always gets processed
    assert sum(not line["processed"] for line in lines) == summary.dropped


def test_recorded_rate_keeps_the_recording_pace(tmp_path):
    frames = _frames([0] * 6, period_ns=100_000_000)  # 10 fps, fast engine: nothing dropped
    summary = replay(ScriptedEngine(), frame_items(frames), _sink(tmp_path), rate="recorded", progress=False)
    assert summary.dropped == 0 and summary.processed == 6
    assert summary.wall_s >= 0.45  # 5 frame periods


def test_interrupt_keeps_the_results_so_far(tmp_path):
    def interrupted():
        yield from _frames()[:4]
        raise KeyboardInterrupt

    summary = replay(ScriptedEngine(), frame_items(interrupted()), _sink(tmp_path), progress=False)
    assert summary.interrupted and summary.processed == 4
    assert len(_lines(tmp_path / "results.jsonl")) == 4
    with BagReader(tmp_path / "results") as bag:
        assert bag.count("/emotions") == 4 and bag.count("/camera/image_raw/compressed") == 4


def test_damaged_input_stops_with_an_error_and_keeps_results(tmp_path):
    src = tmp_path / "input"
    with BagWriter(src) as bag:
        for i, f in enumerate(_frames()[:5]):
            msgtype, msg = image_message(bag.store, f.image, f.stamp_ns, "cam", "rgb8")
            if i == 3:
                msg.step = 5  # a broken driver
            bag.write("/camera/image_raw", msgtype, f.stamp_ns, msg)
    summary = jobs.run(jobs.open_input(str(src)), ScriptedEngine(), tmp_path / "out", progress=False)
    assert "bad image on /camera/image_raw" in summary.error
    assert summary.processed == 3
    assert len(_lines(tmp_path / "out" / "results.jsonl")) == 3
    with BagReader(tmp_path / "out" / "results") as bag:
        assert bag.count("/emotions") == 3


def test_run_input_errors_come_before_any_output(tmp_path):
    bag = tmp_path / "bag"
    write_image_bag(_frames()[:2], bag, "/front/image_raw")
    with pytest.raises(BagError, match="no topic /camera/image_raw; its image topics: /front/image_raw"):
        jobs.open_input(str(bag), "/camera/image_raw")
    with pytest.raises(BagError, match="no std_msgs/msg/String topic /labels"):
        jobs.open_input(str(bag), None, "/labels")
    inp = jobs.open_input(str(bag))
    (tmp_path / "out" / "results").mkdir(parents=True)
    with pytest.raises(BagError, match="already exists"):
        jobs.run(inp, ScriptedEngine(), tmp_path / "out", progress=False)
