"""Reading perception results back (evaluation/results.py) from hand-written JSON lines and
hand-built results bags, checked against the values written in each test."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from rosbags.rosbag2 import Writer

from emotion_perception.evaluation.bags import EMOTION_ARRAY, FLOAT64, IMAGE, STRING, BagWriter, image_message
from emotion_perception.evaluation.results import (ResultsAccumulator, ResultsError, load_jsonl, load_results,
                                                   load_results_bag)
from emotion_perception.interfaces import typestore
from emotion_perception.messages import MessageTypes, estimates_to_array_msg
from emotion_perception.types import Box, EmotionEstimate

T0 = 1_700_000_000_000_000_000
HAPPY = [0.05, 0.7, 0.05, 0.05, 0.05, 0.05, 0.05]

# frame 2 first: lines are in completion order; a blank line in the middle is skipped
JSONL = """\
{"frame": 2, "stamp_ns": 1700000000200000000, "processed": true, "latency_ms": 31.5, "faces": [\
{"id": "face_1", "box": [10, 20, 30, 40], "probs": [0.05, 0.7, 0.05, 0.05, 0.05, 0.05, 0.05]}, \
{"id": 7, "box": [100.5, 50.25, 60, 80], "probs": [0.1, 0.1, 0.4, 0.1, 0.1, 0.1, 0.1], \
"frames_used": 4, "model_id": "ous_v1", "polarity_probs": [0.2, 0.3, 0.5], "person": "person_2"}]}

{"frame": 0, "stamp_ns": 1700000000000000000, "processed": true, "latency_ms": 12.0, "faces": []}
{"frame": 1, "stamp_ns": 1700000000100000000, "processed": false, "latency_ms": null}
"""


def test_jsonl_fields_and_defaults(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(JSONL)
    res = load_jsonl(path)
    assert res.source == str(path)
    assert [(f.index, f.stamp_ns, f.processed, f.latency_ms) for f in res.frames] == [
        (0, T0, True, 12.0), (1, T0 + 100_000_000, False, None), (2, T0 + 200_000_000, True, 31.5)]
    assert res.frames[1].estimates == []  # "faces" absent
    small, big = res.frames[2].estimates
    assert small.face_id == "face_1" and big.face_id == "7"  # ids are strings
    assert small.person_id == "" and big.person_id == "person_2"  # files from before person ids: ""
    assert small.box == Box(10, 20, 30, 40) and big.box == Box(100.5, 50.25, 60, 80)
    assert small.probabilities.dtype == np.float32
    np.testing.assert_array_equal(small.probabilities, np.float32(HAPPY))
    assert (small.frames_used, small.model_id, small.polarity_probabilities) == (1, "", None)  # defaults
    assert (big.frames_used, big.model_id) == (4, "ous_v1")
    assert big.polarity_probabilities.dtype == np.float32
    np.testing.assert_array_equal(big.polarity_probabilities, np.float32([0.2, 0.3, 0.5]))
    assert small.stamp_ns == big.stamp_ns == T0 + 200_000_000  # each face carries its line's stamp
    # the main face is the largest box (60x80), not the first listed; lookup by id string
    assert res.frames[2].main_face() is big
    assert res.frames[2].face("7") is big and res.frames[2].face("face_9") is None
    assert res.frames[0].main_face() is None
    assert (res.t0_ns, res.end_ns, res.seconds(res.frames[2])) == (T0, T0 + 200_000_000, 0.2)


def test_jsonl_cut_off_last_line_is_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "results.jsonl"
    lines = JSONL.splitlines()
    path.write_text("\n".join([lines[2], lines[3], lines[0][:50]]) + "\n\n")  # blank lines after the cut one
    with caplog.at_level(logging.WARNING):
        res = load_jsonl(path)
    assert [f.index for f in res.frames] == [0, 1]
    [record] = [r for r in caplog.records if "incomplete" in r.getMessage()]
    assert record.getMessage().startswith(f"{path}:3: ignoring an incomplete last line (Unterminated string")


def test_jsonl_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"frame": 0}\n{"frame": 1, "stamp_ns": 5, "processed": true}\n')
    with pytest.raises(ResultsError, match=rf"^{bad}:1: not a results line \(KeyError: 'stamp_ns'\)$"):
        load_jsonl(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    with pytest.raises(ResultsError, match=rf"^results file {empty} has no frames$"):
        load_jsonl(empty)
    empty.write_text("")
    with pytest.raises(ResultsError, match="has no frames"):
        load_jsonl(empty)
    with pytest.raises(ResultsError, match=rf"^cannot read results {tmp_path}/absent.jsonl: No such file or directory"):
        load_jsonl(tmp_path / "absent.jsonl")


def test_load_results_picks_the_reader_by_file_type(tmp_path):
    (tmp_path / "r.json").write_text(JSONL)  # .json is read as JSON lines too
    assert len(load_results(tmp_path / "r.json").frames) == 3
    bag = tmp_path / "replay.json"  # a results bag folder whose name ends in .json is still a bag
    _results_bag(bag, images=False)
    assert load_results(bag).source == str(bag)
    with pytest.raises(ResultsError, match=rf"^no results at {tmp_path}/absent$"):
        load_results(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match=rf"^{tmp_path}/empty is an empty folder, not a rosbag2 bag$"):
        load_results(tmp_path / "empty")


def _estimate(face_id: str, w: float) -> EmotionEstimate:
    return EmotionEstimate(face_id, Box(1, 2, w, w), np.float32(HAPPY), 3, "m")


def _results_bag(path, images=True, results=((0, 12.5), (2, 30.0)), labels=True, extra=()):
    """Images at T0 + i * 0.1 s (i = 0..2) on /camera/image_raw (and /side/image_raw), results and
    latencies for the frames in ``results`` (logged 5 ms after their image), labels on /labels."""
    with BagWriter(path) as bag:
        types = MessageTypes.from_typestore(bag.store)
        rgb = np.zeros((4, 6, 3), np.uint8)
        for i in range(3) if images else ():
            stamp = T0 + i * 100_000_000
            bag.write("/camera/image_raw", IMAGE, stamp, image_message(bag.store, rgb, stamp, "cam")[1])
            bag.write("/side/image_raw", IMAGE, stamp + 1, image_message(bag.store, rgb, stamp + 1, "side")[1])
        for i, latency in results:
            stamp, log = T0 + i * 100_000_000, T0 + i * 100_000_000 + 5_000_000
            msg = estimates_to_array_msg([_estimate(f"face_{i}", 10)], types.header(stamp, "cam"), types)
            bag.write("/emotions", EMOTION_ARRAY, log, msg)
            bag.write("/emotions/latency_ms", FLOAT64, log, bag.store.types[FLOAT64](data=latency))
        for log, text in [(T0 + 1, "happy"), (T0 + 150_000_000, "sad")] if labels else ():
            bag.write("/labels", STRING, log, bag.store.types[STRING](data=text))
        for topic, msgtype, msg in extra:
            bag.write(topic, msgtype, T0, msg)


def _write(bag, topic, msgtype, msg):
    bag.write(topic, msgtype, T0, msg)


def test_results_bag_frames_are_the_chosen_image_topics_stamps(tmp_path):
    path = tmp_path / "rec"
    _results_bag(path)
    res = load_results_bag(path, image_topic="/camera/image_raw", label_topic="/labels")
    assert res.source == str(path)
    assert [(f.index, f.stamp_ns, f.processed, f.latency_ms) for f in res.frames] == [
        (0, T0, True, 12.5), (1, T0 + 100_000_000, False, None), (2, T0 + 200_000_000, True, 30.0)]
    assert [[e.face_id for e in f.estimates] for f in res.frames] == [["face_0"], [], ["face_2"]]
    assert res.label_messages == [(T0 + 1, "happy"), (T0 + 150_000_000, "sad")]
    assert load_results_bag(path, image_topic="/camera/image_raw").label_messages == []


def test_a_bag_of_results_only_has_one_frame_per_result(tmp_path):
    path = tmp_path / "rec"
    _results_bag(path, images=False, results=((2, 30.0), (0, 12.5)))
    res = load_results_bag(path)
    assert [(f.index, f.stamp_ns, f.processed, f.latency_ms) for f in res.frames] == [
        (0, T0, True, 12.5), (1, T0 + 200_000_000, True, 30.0)]


def test_results_bag_errors_list_what_the_bag_has(tmp_path):
    store = typestore("humble")
    types = MessageTypes.from_typestore(store)
    array = estimates_to_array_msg([], types.header(T0, "cam"), types)
    path = tmp_path / "two"
    _results_bag(path, extra=[("/b/emotions", EMOTION_ARRAY, array), ("/a/emotions", EMOTION_ARRAY, array),
                              ("/chat", STRING, store.types[STRING](data="hi"))])
    with pytest.raises(ResultsError, match=r"has no emotion_msgs/msg/EmotionStateArray on /other "
                                           r"\(EmotionStateArray topics: /emotions, /b/emotions, /a/emotions\)$"):
        load_results_bag(path, results_topic="/other")
    with pytest.raises(ResultsError, match=r"EmotionStateArray on /labels \(EmotionStateArray topics: /emotions, "):
        load_results_bag(path, results_topic="/labels")  # there, but a String topic
    with pytest.raises(ResultsError, match=rf"^bag {path} has no label topic /lbl \(String topics: /labels, /chat\)$"):
        load_results_bag(path, image_topic="/camera/image_raw", label_topic="/lbl")
    images = tmp_path / "images"
    with BagWriter(images) as bag:
        _write(bag, "/camera/image_raw", *image_message(bag.store, np.zeros((2, 2, 3), np.uint8), T0, "cam"))
    with pytest.raises(ResultsError, match=r"on /emotions \(EmotionStateArray topics: none\)$"):
        load_results_bag(images)
    only_results = tmp_path / "only_results"
    _results_bag(only_results, images=False, labels=False)
    with pytest.raises(ResultsError, match=r"has no label topic /lbl \(String topics: none\)$"):
        load_results_bag(only_results, label_topic="/lbl")


def test_results_bag_without_any_frame_is_an_error(tmp_path):
    path = tmp_path / "nothing"
    with Writer(path, version=8) as writer:  # a results connection, no message on it
        writer.add_connection("/emotions", EMOTION_ARRAY, typestore=typestore("humble"))
    with pytest.raises(ResultsError, match=rf"^bag {path} holds no frames$"):
        load_results_bag(path)


def test_accumulator_marks_images_without_results_as_dropped():
    acc = ResultsAccumulator()
    acc.add_image(T0 + 100)
    acc.add_results(T0, [_estimate("face_1", 10)], 20.0)
    acc.add_results(T0 + 200, [], None)
    acc.add_label(T0 + 150, "sad")
    acc.add_label(T0 + 50, "happy")
    res = acc.results()
    assert res.source == "live" and len(acc) == 2 and acc.outside_recording == 0
    assert [(f.index, f.stamp_ns, f.processed, f.latency_ms) for f in res.frames] == [
        (0, T0, True, 20.0), (1, T0 + 100, False, None), (2, T0 + 200, True, None)]
    assert res.label_messages == [(T0 + 50, "happy"), (T0 + 150, "sad")]
    assert acc.results("eval node").source == "eval node"
