"""ROS messages <-> core types, duck-typed and ROS-free.

Works on rclpy messages and on ``rosbags``-generated classes alike (same field names, CDR
byte-identical): reading only touches fields, and writing builds messages from the classes in a
``MessageTypes`` with every field given as a keyword argument (what rosbags' dataclasses need).
The nodes call ``MessageTypes.from_rclpy()``; tests, bag tools and the replay evaluator call
``MessageTypes.from_typestore(store)``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from .images import RawImage, decode_compressed, from_rgb, to_rgb
from .labels import NUM_CLASSES, POLARITIES
from .types import Box, EmotionEstimate, Frame

POLARITY_UNKNOWN = 255  # emotion_msgs/EmotionState.POLARITY_UNKNOWN
_NS = 1_000_000_000

# Our class names -> the constants of hri_msgs/Expression (REP-155).
HRI_EXPRESSIONS = {
    "happy": "happy",
    "sad": "sad",
    "neutral": "neutral",
    "angry": "angry",
    "surprise": "surprised",
    "disgust": "disgusted",
    "fear": "scared",
}


@dataclass(frozen=True)
class MessageTypes:
    """The message classes the converters build, plus how a uint8[] field wants its bytes."""

    EmotionState: type
    EmotionStateArray: type
    RegionOfInterest: type
    Header: type
    Time: type
    Image: type
    byte_array: Callable[[bytes], Any]
    Expression: type | None = None  # hri_msgs, where installed
    IdsList: type | None = None

    @classmethod
    def from_rclpy(cls) -> "MessageTypes":
        """rclpy's generated classes (call only where ROS is sourced); hri_msgs if importable."""
        import array

        from builtin_interfaces.msg import Time
        from emotion_msgs.msg import EmotionState, EmotionStateArray
        from sensor_msgs.msg import Image, RegionOfInterest
        from std_msgs.msg import Header

        try:
            from hri_msgs.msg import Expression, IdsList
        except ImportError:
            Expression = IdsList = None
        # rclpy stores uint8[] as array('B'); handing it one skips a per-element check.
        return cls(EmotionState, EmotionStateArray, RegionOfInterest, Header, Time, Image,
                   lambda data: array.array("B", data), Expression, IdsList)

    @classmethod
    def from_typestore(cls, store) -> "MessageTypes":
        """Classes of a rosbags typestore (``emotion_perception.interfaces.typestore()``)."""
        t = store.types
        return cls(
            t["emotion_msgs/msg/EmotionState"],
            t["emotion_msgs/msg/EmotionStateArray"],
            t["sensor_msgs/msg/RegionOfInterest"],
            t["std_msgs/msg/Header"],
            t["builtin_interfaces/msg/Time"],
            t["sensor_msgs/msg/Image"],
            lambda data: np.frombuffer(bytes(data), dtype=np.uint8),
            t.get("hri_msgs/msg/Expression"),
            t.get("hri_msgs/msg/IdsList"),
        )

    def header(self, stamp_ns: int, frame_id: str):
        return self.Header(stamp=ns_to_stamp(stamp_ns, self.Time), frame_id=frame_id)


# --- stamps -------------------------------------------------------------------------------------

def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def ns_to_stamp(ns: int, time_cls):
    """Integer nanoseconds -> builtin_interfaces/Time (``time_cls``); nanosec stays in [0, 1e9)."""
    sec, nanosec = divmod(int(ns), _NS)
    return time_cls(sec=sec, nanosec=nanosec)


def _as_bytes(data) -> bytes:
    # rclpy: array('B') or bytes; rosbags: np.ndarray of uint8
    return data if isinstance(data, bytes) else bytes(data)


# --- images in ----------------------------------------------------------------------------------

def image_msg_to_frame(msg, source: str = "") -> Frame:
    """sensor_msgs/Image -> Frame (RGB). Raises ImageError for a bad encoding or buffer."""
    raw = RawImage(
        height=int(msg.height),
        width=int(msg.width),
        encoding=str(msg.encoding),
        step=int(msg.step),
        data=_as_bytes(msg.data),
        is_bigendian=bool(msg.is_bigendian),
    )
    return Frame(to_rgb(raw), stamp_to_ns(msg.header.stamp), msg.header.frame_id, source)


def compressed_msg_to_frame(msg, source: str = "") -> Frame:
    """sensor_msgs/CompressedImage (jpeg/png) -> Frame. Raises ImageError if undecodable."""
    rgb = decode_compressed(str(msg.format), _as_bytes(msg.data))
    return Frame(rgb, stamp_to_ns(msg.header.stamp), msg.header.frame_id, source)


def rgb_to_image_msg(rgb: np.ndarray, header, types: MessageTypes, encoding: str = "rgb8"):
    """RGB array -> sensor_msgs/Image (for the debug image and for tests)."""
    raw = from_rgb(rgb, encoding)
    return types.Image(
        header=header,
        height=raw.height,
        width=raw.width,
        encoding=raw.encoding,
        is_bigendian=0,
        step=raw.step,
        data=types.byte_array(raw.data),
    )


# --- estimates out ------------------------------------------------------------------------------

def box_to_roi(box: Box, roi_cls, image_size: tuple[int, int] | None = None):
    """Box -> sensor_msgs/RegionOfInterest covering it, clipped to ``image_size`` = (width, height)."""
    if image_size is not None:
        box = box.clipped(*image_size)
    x0, y0 = max(0, math.floor(box.x)), max(0, math.floor(box.y))
    x1, y1 = max(x0, math.ceil(box.x + box.w)), max(y0, math.ceil(box.y + box.h))
    return roi_cls(x_offset=x0, y_offset=y0, height=y1 - y0, width=x1 - x0, do_rectify=False)


def estimate_to_state_msg(est: EmotionEstimate, header, types: MessageTypes,
                          image_size: tuple[int, int] | None = None):
    """One EmotionEstimate -> emotion_msgs/EmotionState.

    The state's stamp is the newest frame the estimate used (``est.stamp_ns``; the image's when
    unset) and its frame_id the image's unless the estimate names one.
    """
    probs = np.asarray(est.probabilities, dtype=np.float32).reshape(NUM_CLASSES)
    valence, arousal = est.valence_arousal
    if est.polarity_probabilities is None:
        polarity, polarity_probs = POLARITY_UNKNOWN, np.zeros(len(POLARITIES), np.float32)
    else:
        polarity_probs = np.asarray(est.polarity_probabilities, dtype=np.float32).reshape(len(POLARITIES))
        polarity = int(np.argmax(polarity_probs))
    stamp = ns_to_stamp(est.stamp_ns, types.Time) if est.stamp_ns else header.stamp
    return types.EmotionState(
        header=types.Header(stamp=stamp, frame_id=est.frame_id or header.frame_id),
        face_id=str(est.face_id),
        person_id=str(est.person_id),
        face_box=box_to_roi(est.box, types.RegionOfInterest, image_size),
        class_id=est.class_id,
        class_name=est.class_name,
        confidence=est.confidence,
        probabilities=probs,
        valence=float(valence),
        arousal=float(arousal),
        polarity=polarity,
        polarity_probabilities=polarity_probs,
        frames_used=max(0, min(int(est.frames_used), 65535)),
        model_id=str(est.model_id),
    )


def estimates_to_array_msg(estimates: Iterable[EmotionEstimate], header, types: MessageTypes,
                           image_size: tuple[int, int] | None = None):
    """All faces of one frame -> emotion_msgs/EmotionStateArray with the image's ``header``."""
    states = [estimate_to_state_msg(e, header, types, image_size) for e in estimates]
    return types.EmotionStateArray(header=header, states=states)


# --- estimates in (LLM bridge, evaluation) ------------------------------------------------------

def state_msg_to_estimate(state, source: str = "") -> EmotionEstimate:
    """emotion_msgs/EmotionState -> EmotionEstimate (polarity UNKNOWN -> None)."""
    roi = state.face_box
    polarity_probs = None
    if int(state.polarity) != POLARITY_UNKNOWN:
        polarity_probs = np.asarray(state.polarity_probabilities, dtype=np.float32).copy()
    return EmotionEstimate(
        face_id=state.face_id,
        box=Box(float(roi.x_offset), float(roi.y_offset), float(roi.width), float(roi.height)),
        probabilities=np.asarray(state.probabilities, dtype=np.float32).copy(),
        frames_used=int(state.frames_used),
        model_id=state.model_id,
        stamp_ns=stamp_to_ns(state.header.stamp),
        frame_id=state.header.frame_id,
        source=source,
        polarity_probabilities=polarity_probs,
        person_id=str(state.person_id),
    )


def array_msg_to_estimates(msg, source: str = "") -> list[EmotionEstimate]:
    """emotion_msgs/EmotionStateArray -> list of EmotionEstimate."""
    return [state_msg_to_estimate(s, source) for s in msg.states]


# --- ROS4HRI (REP-155) --------------------------------------------------------------------------

def hri_face_id(face_id: str) -> str:
    """A face id usable as a topic name token (/humans/faces/<id>/...): [A-Za-z0-9_], no leading
    digit or underscore."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", str(face_id)).strip("_")
    if not token or not token[0].isalpha():
        token = "f" + token
    return token


def estimate_to_expression(est: EmotionEstimate, header, expression_cls):
    """EmotionEstimate -> hri_msgs/Expression (hri_msgs 0.8+: header, expression, valence, arousal,
    confidence)."""
    valence, arousal = est.valence_arousal
    return expression_cls(
        header=header,
        expression=HRI_EXPRESSIONS[est.class_name],
        valence=float(valence),
        arousal=float(arousal),
        confidence=float(est.confidence),
    )
