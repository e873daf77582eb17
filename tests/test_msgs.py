"""emotion_msgs: the official rosidl parser accepts the definitions, rosbags resolves and
serialises them, and their constants agree with the core's labels."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import get_types_from_msg, get_typestore, Stores

from conftest import MSGS_DIR
from emotion_perception import labels
from emotion_perception.interfaces import message_definitions, typestore

SYSTEM_PYTHON = "/usr/bin/python3"
CHECKER = Path(__file__).with_name("rosidl_check.py")
INTERFACE_FILES = ["msg/EmotionState.msg", "msg/EmotionStateArray.msg", "srv/Chat.srv"]


def rosidl_parse(package_dir: Path, files: list[str]) -> subprocess.CompletedProcess:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import rosidl_adapter, rosidl_parser"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("Debian's python3-rosidl is not installed (apt-get install python3-rosidl)")
    return subprocess.run(
        [SYSTEM_PYTHON, str(CHECKER), str(package_dir), "emotion_msgs", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rosidl_parses_every_interface():
    proc = rosidl_parse(MSGS_DIR, INTERFACE_FILES)
    assert proc.returncode == 0, proc.stderr
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    state = dict(parsed["msg/EmotionState.msg"]["EmotionState"])
    assert state["header"] == "std_msgs/msg/Header"
    assert state["face_box"] == "sensor_msgs/msg/RegionOfInterest"
    assert state["probabilities"] == "float[7]"
    assert state["polarity_probabilities"] == "float[3]"
    assert state["frames_used"] == "uint16"
    array = dict(parsed["msg/EmotionStateArray.msg"]["EmotionStateArray"])
    assert array["states"] == "emotion_msgs/msg/EmotionState[]"
    chat = parsed["srv/Chat.srv"]
    assert [m for m, _ in chat["request"]] == ["text", "user_id"]
    assert [m for m, _ in chat["response"]] == ["reply", "success", "error", "emotion_context"]


@pytest.mark.parametrize(
    "broken",
    [
        "float32[7 probabilities\n",  # unclosed array bound
        "float32 Confidence\n",  # field names must be lower case
        "uint8 HAPPY=300\n",  # constant out of range for its type
        "uint9 bogus\n",  # not a primitive type
    ],
)
def test_rosidl_rejects_a_broken_copy(tmp_path, broken):
    pkg = tmp_path / "emotion_msgs"
    shutil.copytree(MSGS_DIR / "msg", pkg / "msg")
    (pkg / "msg" / "EmotionState.msg").write_text((MSGS_DIR / "msg/EmotionState.msg").read_text() + broken)
    proc = rosidl_parse(pkg, ["msg/EmotionState.msg"])
    assert proc.returncode != 0
    assert "EmotionState.msg" in proc.stderr


def full_array(store):
    t = store.types
    Time, Header, Roi = t["builtin_interfaces/msg/Time"], t["std_msgs/msg/Header"], t["sensor_msgs/msg/RegionOfInterest"]
    State, Array = t["emotion_msgs/msg/EmotionState"], t["emotion_msgs/msg/EmotionStateArray"]
    header = Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="head_camera_optical")
    states = []
    for i, probs in enumerate(([0.7, 0.05, 0.1, 0.05, 0.05, 0.03, 0.02], [0.1, 0.6, 0.1, 0.1, 0.05, 0.03, 0.02])):
        p = np.asarray(probs, np.float32)
        v, a = labels.valence_arousal(p)
        states.append(
            State(
                header=header,
                face_id=f"face_{i}",
                person_id=f"person_{i + 3}",
                face_box=Roi(x_offset=10 + i, y_offset=20, height=64, width=48, do_rectify=False),
                class_id=int(p.argmax()),
                class_name=labels.class_name(int(p.argmax())),
                confidence=float(p.max()),
                probabilities=p,
                valence=v,
                arousal=a,
                polarity=State.POLARITY_POSITIVE,
                polarity_probabilities=np.array([0.1, 0.2, 0.7], np.float32),
                frames_used=16,
                model_id="tiny-test",
            )
        )
    return Array(header=header, states=states)


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_cdr_round_trip_of_a_full_array(distro):
    store = typestore(distro)
    msg = full_array(store)
    name = "emotion_msgs/msg/EmotionStateArray"
    raw = store.serialize_cdr(msg, name)
    back = store.deserialize_cdr(raw, name)
    assert back.header.stamp.nanosec == 123456789 and back.header.frame_id == "head_camera_optical"
    assert [s.face_id for s in back.states] == ["face_0", "face_1"]
    assert [s.person_id for s in back.states] == ["person_3", "person_4"]
    for got, sent in zip(back.states, msg.states):
        np.testing.assert_array_equal(got.probabilities, sent.probabilities)
        np.testing.assert_array_equal(got.polarity_probabilities, sent.polarity_probabilities)
        assert (got.class_id, got.class_name, got.frames_used) == (sent.class_id, sent.class_name, 16)
        assert got.face_box.x_offset == sent.face_box.x_offset
    # Re-serialising the decoded message gives the same bytes: nothing was lost or reinterpreted.
    assert store.serialize_cdr(back, name) == raw


def test_typestore_rejects_an_unknown_referenced_type():
    text = message_definitions()["emotion_msgs/msg/EmotionState"].replace(
        "sensor_msgs/RegionOfInterest", "sensor_msgs/NoSuchType"
    )
    store = get_typestore(Stores.ROS2_HUMBLE)
    store.register(get_types_from_msg(text, "emotion_msgs/msg/EmotionState"))
    with pytest.raises(Exception, match="NoSuchType"):
        store.serialize_cdr(full_array(typestore()).states[0], "emotion_msgs/msg/EmotionState")


def test_constants_match_the_core_labels():
    State = typestore().types["emotion_msgs/msg/EmotionState"]
    for c in labels.CLASSES:
        assert getattr(State, c.name.upper()) == c.id
    assert State.NUM_CLASSES == labels.NUM_CLASSES
    for pid, name in enumerate(labels.POLARITIES):
        assert getattr(State, f"POLARITY_{name.upper()}") == pid


def test_packaged_definitions_are_the_emotion_msgs_files():
    defs = message_definitions()
    for path in sorted((MSGS_DIR / "msg").glob("*.msg")):
        assert defs[f"emotion_msgs/msg/{path.stem}"] == path.read_text()
