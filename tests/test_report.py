"""Scoring end to end on a constructed case with a known answer, and the report files."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from scripted_engine import ScriptedEngine, coded_frame

from emotion_perception.evaluation import jobs
from emotion_perception.evaluation.bags import STRING, BagMessage
from emotion_perception.evaluation.labels_file import LabelsError
from emotion_perception.evaluation.replay import Item, ResultSink
from emotion_perception.evaluation.report import LATENCY_SIZE, TIMELINE_SIZE
from emotion_perception.evaluation.results import ResultsError

T0 = 1_700_000_000_000_000_000
PERIOD = 100_000_000  # 10 fps: frame i is at i / 10 s
# predicted class per frame (None: no face); frame 4 is dropped
PREDICTED = [0, 0, 0, None, 0, 1, 1, 2, 2, 1, 3, 3]
DROPPED = {4}
LATENCIES = [10.0 * (i + 1) for i in range(12)]
# labels: frames [0, 5) happy, [5, 10) sad, 10 and 11 unlabelled. Expected, by hand:
#   happy: frames 0, 1, 2 right; frame 3 no face (missed); frame 4 dropped  -> recall 3/3
#   sad:   frames 5, 6, 9 right; 7, 8 predicted neutral                     -> recall 3/5
EXPECTED = {"uar": (1.0 + 0.6) / 2, "war": 6 / 8, "scored_samples": 8, "labelled_samples": 9, "missed_faces": 1,
            "frames": 12, "processed_frames": 11, "dropped_frames": 1, "unlabelled_frames_with_faces": 2}
CONFUSION_HAPPY = [3, 0, 0, 0, 0, 0, 0]
CONFUSION_SAD = [0, 3, 2, 0, 0, 0, 0]


@pytest.fixture
def results(tmp_path):
    """A run's outputs for PREDICTED (results bag with a label topic, JSON-lines)."""
    sink = ResultSink(tmp_path / "results", tmp_path / "results.jsonl", image_encoding="rgb8")
    engine = ScriptedEngine()
    store = sink.bag.store
    for t_s, text in ((0.0, "happy"), (0.5, "sad"), (1.0, "none")):
        data = bytes(store.serialize_cdr(store.types[STRING](data=text), STRING))
        sink.add_passthrough(BagMessage("/label", STRING, T0 + int(t_s * 1e9), data))
    for i, cls in enumerate(PREDICTED):
        item = Item(i, coded_frame(cls, T0 + i * PERIOD))
        sink.add_input(item)
        if i in DROPPED:
            sink.add_drop(item)
        else:
            sink.add_result(item, engine.process(item.frame), LATENCIES[i])
    sink.close()
    return tmp_path


def _labels(tmp_path, text, name="labels.csv"):
    (tmp_path / name).write_text(text)
    return tmp_path / name


def _check(ev):
    data = ev.to_dict()
    for key, want in EXPECTED.items():
        assert data[key] == pytest.approx(want), key
    assert data["confusion_matrix"][0] == CONFUSION_HAPPY and data["confusion_matrix"][1] == CONFUSION_SAD
    assert data["per_class_recall"]["happy"] == 1.0 and data["per_class_recall"]["sad"] == pytest.approx(0.6)
    assert data["per_class_recall"]["fear"] is None
    processed = [lat for i, lat in enumerate(LATENCIES) if i not in DROPPED]
    assert data["latency_ms"]["p50"] == pytest.approx(70.0)
    assert data["latency_ms"]["p99"] == pytest.approx(np.percentile(processed, 99))


@pytest.mark.parametrize("source", ["results.jsonl", "results"])
def test_known_answer_from_frame_labels(results, source):
    labels = _labels(results, "start,end,label\n0,5,happy\n5,10,sad\n")
    ev, _ = jobs.evaluate_results(results / source, results / "report", labels)
    _check(ev)


def test_known_answer_from_seconds_and_from_label_topic(results):
    labels = _labels(results, "0,0.5,happy\n0.5,1.0,sad\n")
    ev, _ = jobs.evaluate_results(results / "results.jsonl", results / "r1", labels, units="seconds")
    _check(ev)
    ev, _ = jobs.evaluate_results(results / "results", results / "r2", label_topic="/label")
    _check(ev)


def test_per_face_labels(results):
    labels = _labels(results, "0,12,sad,face_1\n")  # the scripted engine's only track
    ev, _ = jobs.evaluate_results(results / "results.jsonl", results / "report", labels)
    # frames 5, 6, 9 are sad; 10 predicted in total (frame 3 has no face_1, frame 4 dropped)
    assert ev.to_dict()["war"] == pytest.approx(3 / 10) and ev.missed == 1


def test_report_files_and_plot_sizes(results):
    labels = _labels(results, "0,5,happy\n5,10,sad\n")
    _, paths = jobs.evaluate_results(results / "results.jsonl", results / "report", labels)
    for key in ("json", "markdown", "html", "confusion", "timeline", "latency"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0, key
    for key, (w, h) in (("timeline", TIMELINE_SIZE), ("latency", LATENCY_SIZE)):
        image = cv2.imread(str(paths[key]))
        assert image is not None and image.shape == (h, w, 3), key
        assert image.std() > 10, f"{key} plot is blank"
    confusion = cv2.imread(str(paths["confusion"]))
    assert confusion is not None and min(confusion.shape[:2]) >= 300 and confusion.std() > 10
    report = json.loads(paths["json"].read_text())
    assert report["uar"] == pytest.approx(0.8) and report["plots"]["timeline"] == "timeline.png"
    md = paths["markdown"].read_text()
    assert "![confusion](confusion.png)" in md and "| UAR (mean per-class recall) | 80.0% |" in md
    assert "<img src='latency.png'" in paths["html"].read_text()
    # what the LLM hears: every labelled processed frame is a sample, the keys the issue names are filled
    assert report["context_samples"] == report["labelled_samples"]
    assert all(report[k] is not None for k in ("context_accuracy", "count_accuracy", "uncertain_share", "context_wrong_s"))
    assert report["context_delay_s"]["changes"] == 1  # happy -> sad at frame 5
    assert report["plots"]["what the LLM hears"] == "context.png" and cv2.imread(str(paths["what the LLM hears"])).std() > 10
    assert "## What the LLM hears (the context sentence)" in md


def test_eval_errors(results):
    with pytest.raises(LabelsError, match="unknown emotion class 'joy'"):
        jobs.evaluate_results(results / "results.jsonl", results / "r", _labels(results, "0,5,joy\n"))
    with pytest.raises(LabelsError, match="overlapping"):
        jobs.evaluate_results(results / "results.jsonl", results / "r", _labels(results, "0,5,happy\n4,6,sad\n"))
    with pytest.raises(ResultsError, match="needs a results bag"):
        jobs.evaluate_results(results / "results.jsonl", results / "r", label_topic="/label")
    with pytest.raises(ResultsError, match="no label topic /nope"):
        jobs.evaluate_results(results / "results", results / "r", label_topic="/nope")
    lines = (results / "results.jsonl").read_text().splitlines()
    cut = results / "cut.jsonl"
    cut.write_text("\n".join(lines)[:-40])  # the last line cut off by a crash: the others still count
    ev, _ = jobs.evaluate_results(cut, results / "r", _labels(results, "0,5,happy\n"))
    assert ev.frames == 11
    cut.write_text("\n".join(lines[:3] + ["{garbage"] + lines[3:]))
    with pytest.raises(ResultsError, match=r"cut.jsonl:4: not a results line"):
        jobs.evaluate_results(cut, results / "r", _labels(results, "0,5,happy\n"))


def test_live_evaluator_matches_the_offline_report(tmp_path):
    """The eval node's core fed message by message gives the offline numbers (same known case)."""
    from emotion_perception.evaluation.live import LiveEvaluator

    live = LiveEvaluator({"labels_file": str(_labels(tmp_path, "0,5,happy\n5,10,sad\n")),
                          "output_dir": str(tmp_path / "live")})
    engine = ScriptedEngine()
    for i, cls in enumerate(PREDICTED):
        stamp = T0 + i * PERIOD
        live.add_image(stamp)
        if i not in DROPPED:
            live.add_results(stamp, engine.process(coded_frame(cls, stamp)), now_ns=stamp + int(LATENCIES[i] * 1e6))
    ev, paths = live.write()
    _check(ev)
    assert paths["html"].parent == tmp_path / "live" and paths["timeline"].is_file()

    by_topic = LiveEvaluator({"label_topic": "/label", "output_dir": str(tmp_path / "live2")})
    for t_s, text in ((0.0, "happy"), (0.5, "sad"), (1.0, "none")):
        by_topic.add_label(T0 + int(t_s * 1e9), text)
    for i, cls in enumerate(PREDICTED):
        stamp = T0 + i * PERIOD
        by_topic.add_image(stamp)
        if i not in DROPPED:
            by_topic.add_results(stamp, engine.process(coded_frame(cls, stamp)), now_ns=stamp + int(LATENCIES[i] * 1e6))
    _check(by_topic.write()[0])
    by_topic.add_results(T0 + 20 * PERIOD, [], now_ns=T0 + 20 * PERIOD + 3600 * 10**9)  # clocks differ by an hour
    assert by_topic.write()[0].latencies_ms.size == len(PREDICTED) - len(DROPPED)  # not counted as latency
    with pytest.raises(ValueError, match="labels_file or label_topic"):
        LiveEvaluator({})
    with pytest.raises(LabelsError, match="unknown emotion class"):
        LiveEvaluator({"labels_file": str(_labels(tmp_path, "0,1,meh\n", "bad.csv"))})


def test_live_evaluator_numbers_frames_by_the_recording(tmp_path):
    """Frames lost before the eval node saw anything (discovery at the start of `ros2 bag play`)
    are dropped frames of the recording, not a shift of every label (issue 11, defect 4)."""
    from emotion_perception.evaluation.bags import write_image_bag
    from emotion_perception.evaluation.live import LiveEvaluator
    from emotion_perception.types import Frame

    recording = tmp_path / "rec"
    write_image_bag((Frame(np.zeros((2, 2, 3), np.uint8), T0 + i * PERIOD, "cam") for i in range(len(PREDICTED))),
                    recording)
    labels = str(_labels(tmp_path, "0,5,happy\n5,10,sad\n"))
    lost = {0, 1}  # never received: neither image nor result
    engine = ScriptedEngine()

    def feed(live):
        for i, cls in enumerate(PREDICTED):
            stamp = T0 + i * PERIOD
            if i in lost:
                continue
            live.add_image(stamp)
            if i not in DROPPED:
                live.add_results(stamp, engine.process(coded_frame(cls, stamp)))
        return live.write()[0].to_dict()

    aligned = feed(LiveEvaluator({"labels_file": labels, "recording": str(recording), "output_dir": str(tmp_path / "a")}))
    # by hand: happy = frame 2 right (0, 1 lost, 3 no face, 4 dropped); sad = 5, 6, 9 right, 7, 8 neutral
    assert (aligned["frames"], aligned["dropped_frames"], aligned["processed_frames"]) == (12, 3, 9)
    assert aligned["war"] == pytest.approx(4 / 6) and aligned["uar"] == pytest.approx((1.0 + 0.6) / 2)
    assert aligned["confusion_matrix"][0] == [1, 0, 0, 0, 0, 0, 0]
    assert aligned["confusion_matrix"][1] == CONFUSION_SAD

    shifted = feed(LiveEvaluator({"labels_file": labels, "output_dir": str(tmp_path / "s")}))  # no recording
    assert shifted["frames"] == 10 and shifted["confusion_matrix"][1] != CONFUSION_SAD  # what the recording fixes

    stranger = LiveEvaluator({"labels_file": labels, "recording": str(recording), "output_dir": str(tmp_path / "x")})
    stranger.add_results(T0 + 7, [])  # a stamp the recording does not have
    with pytest.raises(ValueError, match="is that the bag being played"):
        stranger.write()
    with pytest.raises(ValueError, match="recording: no bag at"):
        LiveEvaluator({"labels_file": labels, "recording": str(tmp_path / "missing")})
