"""Message <-> core conversion with rosbags-generated classes, through real CDR (Humble and Jazzy)."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from emotion_perception.images import SUPPORTED_ENCODINGS, ImageError, encode_compressed, from_rgb
from emotion_perception.interfaces import typestore
from emotion_perception.labels import CLASS_NAMES, valence_arousal
from emotion_perception.messages import (
    HRI_EXPRESSIONS,
    POLARITY_UNKNOWN,
    MessageTypes,
    array_msg_to_estimates,
    box_to_roi,
    compressed_msg_to_frame,
    estimate_to_expression,
    estimates_to_array_msg,
    hri_face_id,
    image_msg_to_frame,
    ns_to_stamp,
    rgb_to_image_msg,
    stamp_to_ns,
)
from emotion_perception.types import Box, EmotionEstimate

DISTROS = ("humble", "jazzy")
STAMP_NS = 1_700_000_123 * 1_000_000_000 + 456_789


def cdr_roundtrip(store, msg):
    """Serialise and deserialise as rclpy would put it on the wire."""
    return store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


@pytest.fixture(scope="module")
def face_rgb(astronaut):
    """The astronaut's face region, small: a real image keeps codecs honest."""
    return np.ascontiguousarray(cv2.resize(astronaut[0:240, 120:360], (80, 80), interpolation=cv2.INTER_AREA))


@pytest.fixture(params=DISTROS)
def store(request):
    return typestore(request.param)


@pytest.fixture
def types(store):
    return MessageTypes.from_typestore(store)


def image_msg(store, raw, stamp_ns=STAMP_NS, frame_id="head_camera"):
    t = store.types
    header = t["std_msgs/msg/Header"](stamp=ns_to_stamp(stamp_ns, t["builtin_interfaces/msg/Time"]), frame_id=frame_id)
    return t["sensor_msgs/msg/Image"](
        header=header, height=raw.height, width=raw.width, encoding=raw.encoding,
        is_bigendian=int(raw.is_bigendian), step=raw.step, data=np.frombuffer(raw.data, np.uint8))


def compressed_msg(store, fmt, data, stamp_ns=STAMP_NS):
    t = store.types
    header = t["std_msgs/msg/Header"](stamp=ns_to_stamp(stamp_ns, t["builtin_interfaces/msg/Time"]), frame_id="cam")
    return t["sensor_msgs/msg/CompressedImage"](header=header, format=fmt, data=np.frombuffer(data, np.uint8))


def estimate(face_id="face_1", polarity=None, stamp_ns=STAMP_NS, box=Box(10.2, 20.7, 30.0, 40.0)):
    probs = np.array([0.6, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05], np.float32)
    pol = None if polarity is None else np.asarray(polarity, np.float32)
    return EmotionEstimate(face_id, box, probs, frames_used=12, model_id="lite-fer2013", stamp_ns=stamp_ns,
                           frame_id="head_camera", polarity_probabilities=pol)


# --- stamps ------------------------------------------------------------------------------------

@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 1_000_000_000, STAMP_NS, 2**31 * 1_000_000_000 - 1])
def test_stamp_round_trip(ns, store):
    time_cls = store.types["builtin_interfaces/msg/Time"]
    stamp = ns_to_stamp(ns, time_cls)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert stamp_to_ns(cdr_roundtrip(store, stamp)) == ns


# --- images in ---------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_every_raw_encoding_through_cdr(store, face_rgb, encoding):
    msg = cdr_roundtrip(store, image_msg(store, from_rgb(face_rgb, encoding)))
    frame = image_msg_to_frame(msg, source="/head/image")
    assert frame.image.shape == face_rgb.shape and frame.image.dtype == np.uint8
    assert frame.stamp_ns == STAMP_NS and frame.frame_id == "head_camera" and frame.source == "/head/image"
    got = frame.image.astype(int)
    if encoding in ("mono8", "8UC1", "mono16", "16UC1"):
        grey = cv2.cvtColor(face_rgb, cv2.COLOR_RGB2GRAY).astype(int)
        assert np.array_equal(got, np.repeat(grey[:, :, None], 3, axis=2))
    elif encoding in ("uyvy", "yuv422", "yuyv", "yuv422_yuy2"):  # chroma subsampled: close, not exact
        assert np.abs(got - face_rgb.astype(int)).mean() < 8
    else:
        assert np.array_equal(got, face_rgb.astype(int))


def test_padded_rows_and_big_endian(store, face_rgb):
    padded = from_rgb(face_rgb, "bgr8", row_padding=16)
    assert np.array_equal(image_msg_to_frame(cdr_roundtrip(store, image_msg(store, padded))).image, face_rgb)
    little = from_rgb(face_rgb, "rgb16")
    swapped = np.frombuffer(little.data, "<u2").astype(">u2").tobytes()
    big = type(little)(little.height, little.width, "rgb16", little.step, swapped, True)
    assert np.array_equal(image_msg_to_frame(cdr_roundtrip(store, image_msg(store, big))).image, face_rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_real_image(store, shared_data, fmt):
    rgb = cv2.cvtColor(cv2.imread(str(shared_data / "images" / "astronaut.png")), cv2.COLOR_BGR2RGB)
    field, data = encode_compressed(rgb, fmt)
    frame = compressed_msg_to_frame(cdr_roundtrip(store, compressed_msg(store, field, data)), "cam0")
    assert frame.image.shape == rgb.shape and frame.stamp_ns == STAMP_NS and frame.frame_id == "cam"
    error = np.abs(frame.image.astype(int) - rgb.astype(int)).mean()
    assert error == 0 if fmt == "png" else error < 4


def test_corrupt_images_raise_image_error(store, face_rgb):
    raw = from_rgb(face_rgb, "rgb8")
    truncated = image_msg(store, type(raw)(raw.height, raw.width, "rgb8", raw.step, raw.data[:-7]))
    with pytest.raises(ImageError, match="bytes"):
        image_msg_to_frame(truncated)
    wrong_encoding = image_msg(store, type(raw)(raw.height, raw.width, "jpeg", raw.step, raw.data))
    with pytest.raises(ImageError, match="encoding"):
        image_msg_to_frame(wrong_encoding)
    _, jpeg = encode_compressed(face_rgb, "jpeg")
    garbage = bytes(b ^ 0x5A for b in jpeg)
    with pytest.raises(ImageError, match="decode"):
        compressed_msg_to_frame(compressed_msg(store, "jpeg", garbage))
    with pytest.raises(ImageError, match="empty"):
        compressed_msg_to_frame(compressed_msg(store, "png", b""))


def test_rgb_to_image_msg_round_trip(store, types, face_rgb):
    header = types.header(STAMP_NS, "dbg")
    msg = cdr_roundtrip(store, rgb_to_image_msg(face_rgb, header, types))
    assert msg.encoding == "rgb8" and msg.step == face_rgb.shape[1] * 3
    frame = image_msg_to_frame(msg)
    assert np.array_equal(frame.image, face_rgb) and frame.stamp_ns == STAMP_NS and frame.frame_id == "dbg"


# --- estimates out and back --------------------------------------------------------------------

def test_array_round_trip_through_cdr(store, types):
    header = types.header(STAMP_NS, "head_camera")
    newer = STAMP_NS + 33_000_000
    ests = [estimate("face_1"), estimate("face_2", polarity=[0.1, 0.2, 0.7], stamp_ns=newer)]
    ests[1].person_id = "person_7"
    msg = cdr_roundtrip(store, estimates_to_array_msg(ests, header, types, image_size=(640, 480)))

    assert stamp_to_ns(msg.header.stamp) == STAMP_NS and msg.header.frame_id == "head_camera"
    first, second = msg.states
    assert first.class_id == 0 and first.class_name == "happy" and first.class_name in CLASS_NAMES
    assert first.confidence == pytest.approx(0.6)
    assert first.polarity == POLARITY_UNKNOWN and not np.any(first.polarity_probabilities)
    assert second.polarity == 2 and second.polarity_probabilities == pytest.approx([0.1, 0.2, 0.7])
    assert stamp_to_ns(second.header.stamp) == newer  # newest frame used, not the array's stamp
    v, a = valence_arousal(ests[0].probabilities)
    assert (first.valence, first.arousal) == (pytest.approx(v), pytest.approx(a))
    roi = first.face_box
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (10, 20, 31, 41)
    assert first.frames_used == 12 and first.model_id == "lite-fer2013"

    back = array_msg_to_estimates(msg, source="cam")
    assert [e.face_id for e in back] == ["face_1", "face_2"]
    assert [s.person_id for s in msg.states] == ["", "person_7"]  # "": identity off or not yet known
    assert [e.person_id for e in back] == ["", "person_7"] and back[0].subject_id == "face_1"
    for orig, got in zip(ests, back):
        assert got.probabilities == pytest.approx(orig.probabilities)
        assert got.class_id == orig.class_id and got.stamp_ns == orig.stamp_ns and got.source == "cam"
        assert got.frames_used == orig.frames_used and got.model_id == orig.model_id
    assert back[0].polarity_probabilities is None
    assert back[1].polarity_name == "positive"


def test_empty_frame_gives_empty_array(store, types):
    msg = cdr_roundtrip(store, estimates_to_array_msg([], types.header(5, "c"), types))
    assert list(msg.states) == [] and stamp_to_ns(msg.header.stamp) == 5


def test_box_clipped_to_image(types):
    roi = box_to_roi(Box(-12.5, 470.0, 100.0, 50.0), types.RegionOfInterest, image_size=(640, 480))
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (0, 470, 88, 10)
    assert roi.do_rectify is False
    outside = box_to_roi(Box(700.0, 10.0, 20.0, 20.0), types.RegionOfInterest, image_size=(640, 480))
    assert outside.width == 0 and outside.x_offset == 640  # degenerate, never negative


# --- ROS4HRI -----------------------------------------------------------------------------------

def test_hri_face_ids_are_topic_tokens():
    assert hri_face_id("face_3") == "face_3"
    assert hri_face_id("cam0/face-3") == "cam0_face_3"
    assert hri_face_id("7") == "f7"
    assert hri_face_id("") == "f"


def test_expression_fields():
    expression = estimate_to_expression(estimate(), "hdr", lambda **kw: SimpleNamespace(**kw))
    assert expression.expression == "happy" and expression.header == "hdr"
    assert expression.confidence == pytest.approx(0.6)
    assert -1 <= expression.valence <= 1 and -1 <= expression.arousal <= 1
    assert set(HRI_EXPRESSIONS) == set(CLASS_NAMES)
    # REP-155's vocabulary (hri_msgs/Expression constants)
    assert set(HRI_EXPRESSIONS.values()) <= {"neutral", "angry", "sad", "happy", "surprised", "disgusted", "scared"}
