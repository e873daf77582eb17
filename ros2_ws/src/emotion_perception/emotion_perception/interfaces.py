"""emotion_msgs definitions for code that runs without ROS (bags, tests, CDR).

The .msg files of ``emotion_msgs`` travel inside this package (``msg_definitions`` links to the
emotion_msgs package source), so a pip-installed emotion_perception can write and read bags of
``EmotionStateArray`` with ``rosbags``, whose CDR is byte-identical to rclpy's.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

DEFINITIONS_DIR = Path(__file__).parent / "msg_definitions"
PACKAGE = "emotion_msgs"
_STORES = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}


def message_definitions() -> dict[str, str]:
    """{"emotion_msgs/msg/EmotionState": <.msg text>, ...} for every message of emotion_msgs."""
    files = sorted((DEFINITIONS_DIR / "msg").glob("*.msg"))
    if not files:
        raise FileNotFoundError(f"no emotion_msgs .msg files under {DEFINITIONS_DIR / 'msg'}")
    return {f"{PACKAGE}/msg/{f.stem}": f.read_text() for f in files}


@lru_cache(maxsize=None)
def typestore(distro: str = "humble"):
    """A rosbags typestore with the distro's standard types plus emotion_msgs.

    Registration resolves every referenced type, so a field naming a type that does not exist
    fails here (the rosidl parser alone does not check that).
    """
    if distro not in _STORES:
        raise ValueError(f"unknown ROS distro {distro!r}; expected one of {', '.join(_STORES)}")
    store = get_typestore(_STORES[distro])
    types = {}
    for name, text in message_definitions().items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
