"""Labels CSV parsing (frames / seconds, main face / per face) and its errors."""
from __future__ import annotations

import pytest

from emotion_perception.evaluation.labels_file import (LabelRange, Labels, LabelsError, labels_from_messages,
                                                       load_labels, write_labels)
from emotion_perception.labels import class_id


def _csv(tmp_path, text, name="labels.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_frame_ranges_are_half_open(tmp_path):
    labels = load_labels(_csv(tmp_path, "start,end,label\n0,10,happy  # comment\n\n10,15,Sadness\n"))
    assert labels.units == "frames"
    assert [labels.target(i, 0.0) for i in (0, 9, 10, 14, 15)] == [0, 0, 1, 1, None]


def test_seconds_ranges_use_time_not_index(tmp_path):
    labels = load_labels(_csv(tmp_path, "0.5,1.5,surprise\n"), units="seconds")
    assert labels.target(frame_index=0, seconds=0.4) is None
    assert labels.target(frame_index=0, seconds=0.5) == class_id("surprise")
    assert labels.target(frame_index=99, seconds=1.49) == class_id("surprise")
    assert labels.target(frame_index=1, seconds=1.5) is None


def test_per_face_ranges(tmp_path):
    labels = load_labels(_csv(tmp_path, "0,10,happy\n0,10,angry,3\n5,20,fear,7\n"))
    assert labels.face_ids == {None, "3", "7"}
    assert labels.target(2, 0, None) == class_id("happy")
    assert labels.target(2, 0, "3") == class_id("angry")
    assert labels.target(2, 0, "7") is None
    assert labels.target(12, 0, "7") == class_id("fear")


def test_unknown_class_names_the_line(tmp_path):
    path = _csv(tmp_path, "0,10,happy\n10,20,bored\n")
    with pytest.raises(LabelsError, match=r"labels.csv:2: unknown emotion class 'bored'"):
        load_labels(path)


def test_overlapping_ranges_of_one_face_are_an_error(tmp_path):
    with pytest.raises(LabelsError, match=r"overlapping ranges for the main face: line 1 \[0, 10\) happy and line 2"):
        load_labels(_csv(tmp_path, "0,10,happy\n9,20,sad\n"))
    with pytest.raises(LabelsError, match="overlapping ranges for face 2"):
        load_labels(_csv(tmp_path, "0,10,happy,2\n5,6,sad,2\n"))
    # the same span for different faces is fine
    assert len(load_labels(_csv(tmp_path, "0,10,happy,1\n0,10,sad,2\n")).ranges) == 2


@pytest.mark.parametrize("text, message", [
    ("0,happy\n", "expected start,end,label"),
    ("a,10,happy\n", "start 'a' is not a number"),
    ("10,10,happy\n", "must be greater than start"),
    ("-1,3,happy\n", "negative"),
    ("# only a comment\n", "no label ranges"),
])
def test_malformed_lines(tmp_path, text, message):
    with pytest.raises(LabelsError, match=message):
        load_labels(_csv(tmp_path, text))


def test_bad_units_and_missing_file(tmp_path):
    with pytest.raises(LabelsError, match="units"):
        load_labels(_csv(tmp_path, "0,1,happy\n"), units="minutes")
    with pytest.raises(LabelsError, match="cannot read labels file"):
        load_labels(tmp_path / "absent.csv")


def test_write_then_load(tmp_path):
    ranges = [LabelRange(0, 60, 0), LabelRange(60, 70, 2, "4")]
    labels = load_labels(write_labels(tmp_path / "out.csv", ranges))
    assert [(r.start, r.end, r.class_id, r.face_id) for r in labels.ranges] == [(0, 60, 0, None), (60, 70, 2, "4")]


def test_label_topic_messages_hold_until_the_next():
    t0 = 10_000_000_000
    msgs = [(t0, "happy"), (t0 + 2_000_000_000, "none"), (t0 + 3_000_000_000, "sad")]
    labels = labels_from_messages(msgs, t0, t0 + 4_000_000_000)
    assert labels.units == "seconds"
    assert [labels.target(0, s) for s in (0.0, 1.99, 2.5, 3.0, 4.0)] == [0, 0, None, 1, 1]
    with pytest.raises(LabelsError, match="unknown emotion class 'meh'"):
        labels_from_messages([(t0, "meh")], t0, t0)


@pytest.mark.parametrize("text, message", [
    ("5,nan,happy\n", "end 'nan' is not a finite number"),  # NaN compares false: it used to pass
    ("nan,5,happy\n", "start 'nan' is not a finite number"),
    ("0,inf,happy\n", "end 'inf' is not a finite number"),
    ("0,1e309,happy\n", "end '1e309' is not a finite number"),
])
def test_non_finite_numbers_are_refused(tmp_path, text, message):
    """Found by benchmarks/fuzz.py: a NaN end made a range that covers no frame, silently."""
    with pytest.raises(LabelsError, match=message):
        load_labels(_csv(tmp_path, text))


def test_a_file_that_is_not_utf8_is_a_labels_error(tmp_path):
    """Found by benchmarks/fuzz.py: UnicodeDecodeError used to escape load_labels."""
    path = tmp_path / "labels.csv"
    path.write_bytes("0,10,happy\n".encode() + b"\xff\xfe,1,sad\n")
    with pytest.raises(LabelsError, match=r"not UTF-8 text \(byte 11"):
        load_labels(path)


def test_comments_trailing_commas_and_source(tmp_path):
    path = _csv(tmp_path, "0,10,happy,  # a comment # with a second hash\n10,20,sad,,\n20,30,fear,face_2\n")
    labels = load_labels(path)
    assert labels.source == str(path)
    assert [(r.start, r.end, r.class_id, r.face_id, r.line) for r in labels.ranges] == [
        (0, 10, class_id("happy"), None, 1), (10, 20, class_id("sad"), None, 2),
        (20, 30, class_id("fear"), "face_2", 3)]
    with pytest.raises(LabelsError, match=rf"^{path}:1: expected start,end,label\[,face_id\], got 5 columns$"):
        load_labels(_csv(tmp_path, "0,10,happy,,face_3\n"))  # an empty cell inside is no trailing one


def test_error_messages_name_file_line_and_choices(tmp_path):
    path = _csv(tmp_path, "0,10,happy\nx,20,sad\n")
    with pytest.raises(LabelsError, match=rf"^{path}:2: start 'x' is not a number$"):
        load_labels(path)
    with pytest.raises(LabelsError, match=rf"^{path}:1: end 'y' is not a number$"):
        load_labels(_csv(tmp_path, "0,y,sad\n"))
    with pytest.raises(LabelsError, match=r"^label units must be one of frames, seconds, got 'minutes'$"):
        load_labels(path, units="minutes")
    with pytest.raises(LabelsError, match=r"^label units must be one of frames, seconds, got 'hours'$"):
        Labels((), units="hours")
    with pytest.raises(LabelsError, match=rf"^cannot read labels file {tmp_path}/absent.csv: No such file or directory"):
        load_labels(tmp_path / "absent.csv")
    with pytest.raises(LabelsError, match=rf"^{path}: overlapping ranges for face 2: line 1 \[0, 10\) happy and line 2 "
                                          r"\[5, 6\) sad$"):
        load_labels(_csv(tmp_path, "0,10,happy,2\n5,6,sad,2\n"))
    with pytest.raises(LabelsError, match=r"^labels: overlapping ranges for the main face: line 0 \[0, 2\) happy and "):
        Labels((LabelRange(0, 2, class_id("happy")), LabelRange(1, 3, class_id("sad"))))


def test_label_topic_ranges_exactly():
    t0 = 10_000_000_000
    msgs = [(t0 + 2_500_000_000, "sad"), (t0, "happy"), (t0 + 1_000_000_000, "neutral"), (t0 + 2_500_000_000, "fear")]
    labels = labels_from_messages(msgs, t0, t0 + 4_000_000_000)
    # sorted by time; "fear" and "sad" share a stamp: the first of the two ("fear") holds for no time
    assert labels.source == "label topic"
    assert [(r.start, r.end, r.class_id, r.face_id, r.line) for r in labels.ranges] == [
        (0.0, 1.0, class_id("happy"), None, 1), (1.0, 2.5, class_id("neutral"), None, 2),
        (2.5, 4.000000001, class_id("sad"), None, 4)]
    assert labels_from_messages(msgs, t0, t0 + 4_000_000_000, "/labels").source == "/labels"
    with pytest.raises(LabelsError, match=rf"^label topic: message 2 at {t0 + 1} ns: unknown emotion class 'meh'"):
        labels_from_messages([(t0, "happy"), (t0 + 1, "meh")], t0, t0 + 5)
    with pytest.raises(LabelsError, match=r"^/labels holds no class labels$"):
        labels_from_messages([(t0, "none"), (t0 + 1, "")], t0, t0 + 5, "/labels")


def test_written_labels_file_text(tmp_path):
    ranges = [LabelRange(0, 60, class_id("angry")), LabelRange(60, 70.5, class_id("happy"), "face_4")]
    path = write_labels(tmp_path / "new" / "dir" / "labels.csv", ranges)
    assert path.read_bytes() == b"start,end,label,face_id\r\n0,60,angry,\r\n60,70.5,happy,face_4\r\n"  # csv: CRLF
