"""rosbag2 recordings without ROS: write image / result bags and read images back, via rosbags.

Format versions (checked against the rosbag2 sources of each distro):

- Humble's rosbag2 (0.15.x) writes metadata version 5 and has no upper bound when reading: it
  decodes a newer ``metadata.yaml`` field by field. From version 4 on it reads
  ``offered_qos_profiles`` as a YAML *string*; version 9 (Jazzy's default) stores that field as a
  YAML *list*, which Humble cannot convert, so Humble fails to open version-9 bags.
- Jazzy's rosbag2 (0.26.x) writes version 9 and reads every older version.
- rosbags writes version 8 or 9 only. Version 8 keeps the QoS string, so **version 8 is the one
  both Humble and Jazzy read**, and it is the default here (``--bag-version 9`` on request). The
  sqlite3 schema rosbags writes only adds tables/columns Humble ignores; the mcap storage plugin
  ships with both distros.

A writer here always finalises the bag (storage index + ``metadata.yaml``), also when the caller
fails or is interrupted half-way, so results already written stay readable.
"""
from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import apsw
import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError, WriterError

from ..images import ImageError, encode_compressed
from ..interfaces import typestore
from ..messages import MessageTypes, compressed_msg_to_frame, image_msg_to_frame, rgb_to_image_msg
from ..types import Frame
from .bag_format import BAG_VERSIONS, DEFAULT_BAG_VERSION, DEFAULT_STORAGE, STORAGE_NAMES

STORAGES = {name: StoragePlugin[name.upper()] for name in STORAGE_NAMES}
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
STRING = "std_msgs/msg/String"
FLOAT64 = "std_msgs/msg/Float64"
EMOTION_ARRAY = "emotion_msgs/msg/EmotionStateArray"
RESULTS_TOPIC = "/emotions"


def latency_topic(results_topic: str) -> str:
    """Where a replay stores per-frame latency (std_msgs/Float64, ms) next to its results."""
    return results_topic.rstrip("/") + "/latency_ms"

# What rosbags and its storage back ends raise on a damaged file (truncated mcap records,
# a cut-off sqlite database, a missing or broken metadata.yaml). rosbags reads sqlite3 through
# apsw, whose errors (e.g. apsw.CorruptError while iterating) are not sqlite3's. A damaged db3
# schema can also hand rosbags a NULL where it compares numbers (TypeError). An overwritten mcap
# size field makes rosbags read or seek that many bytes: MemoryError, or OverflowError past 2**63.
_IMPOSSIBLE_SIZE = (MemoryError, OverflowError)
_DAMAGE = (ReaderError, sqlite3.DatabaseError, apsw.Error, struct.error, EOFError, KeyError, IndexError, ValueError,
           TypeError, OSError, *_IMPOSSIBLE_SIZE)


class BagError(Exception):
    """A bag that cannot be read or written as asked; the message says what to do."""


def image_message(store, rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    """A rosbags sensor_msgs/Image (``encoding`` rgb8/bgr8/...) or, for "jpeg"/"png", a
    CompressedImage; returns (msgtype, message)."""
    types = MessageTypes.from_typestore(store)
    hdr = types.header(stamp_ns, frame_id)
    if encoding in ("jpeg", "png"):
        fmt, data = encode_compressed(rgb, encoding)
        msg = store.types[COMPRESSED_IMAGE](header=hdr, format=fmt, data=np.frombuffer(data, np.uint8))
        return COMPRESSED_IMAGE, msg
    return IMAGE, rgb_to_image_msg(rgb, hdr, types, encoding)


class BagWriter:
    """A rosbag2 being written; topics are added on first use. Use as a context manager.

    ``close`` (also on an exception or Ctrl-C inside the ``with`` block) finalises the storage and
    writes ``metadata.yaml``, so a partial bag is still a valid bag.
    """

    def __init__(self, path: str | Path, storage: str = DEFAULT_STORAGE, version: int = DEFAULT_BAG_VERSION,
                 distro: str = "humble"):
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}; expected one of {', '.join(STORAGES)}")
        if version not in BAG_VERSIONS:
            raise BagError(f"unsupported bag version {version}; expected one of {BAG_VERSIONS} "
                           "(8 is read by Humble and Jazzy, 9 by Jazzy only)")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} already exists; choose a new output path (bags are never overwritten)")
        self.store = typestore(distro)
        self._writer = Writer(self.path, version=version, storage_plugin=STORAGES[storage])
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self._writer.set_custom_data("writer", "emotion_perception")
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f"cannot create bag {self.path}: {exc}") from None

    def _connection(self, topic: str, msgtype: str):
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=self.store)
            self._connections[topic] = conn
            self.counts[topic] = 0
        elif conn.msgtype != msgtype:
            raise BagError(f"topic {topic} already holds {conn.msgtype}, cannot also write {msgtype}")
        return conn

    def write(self, topic: str, msgtype: str, log_time_ns: int, msg) -> None:
        self.write_raw(topic, msgtype, log_time_ns, self.store.serialize_cdr(msg, msgtype))

    def write_raw(self, topic: str, msgtype: str, log_time_ns: int, data: bytes | memoryview) -> None:
        """Write an already serialised (CDR) message, e.g. one copied from another bag."""
        self._writer.write(self._connection(topic, msgtype), int(log_time_ns), data)
        self.counts[topic] += 1

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes  # CDR as stored, for copying into another bag


def _damaged(path: Path, exc: BaseException, read: int | None = None) -> BagError:
    kept = "" if read is None else f" after {read} messages"
    if isinstance(exc, FileNotFoundError):
        hint = "a bag directory needs its metadata.yaml (`ros2 bag reindex` rebuilds it), or pass the .mcap/.db3 file"
    else:
        hint = "the recording was probably cut off; `mcap recover` (mcap) or sqlite3's .recover (db3) may salvage it"
    reason = f"a record claims an impossible size ({type(exc).__name__})" if isinstance(exc, _IMPOSSIBLE_SIZE) else exc
    return BagError(f"bag {path} is truncated or corrupt ({reason}){kept}: {hint}")


def _check_bag_folder(path: Path) -> None:
    """A folder that was never a rosbag2 (empty, or images) is told apart from a damaged bag."""
    if not path.is_dir() or (path / "metadata.yaml").is_file():
        return
    if not any(path.iterdir()):
        raise BagError(f"{path} is an empty folder, not a rosbag2 bag")
    if not any(p.suffix in (".mcap", ".db3") for p in path.iterdir()):
        raise BagError(f"{path} is not a rosbag2 folder: it has no metadata.yaml and no .mcap/.db3 file "
                       "(record one with `emotion-perception record` or `ros2 bag record`)")


class BagReader:
    """Read-side of a rosbag2 (directory, or a bare .mcap / .db3 file)."""

    def __init__(self, path: str | Path, distro: str = "humble"):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"no bag at {self.path}")
        _check_bag_folder(self.path)
        self.store = typestore(distro)
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except _DAMAGE as exc:
            raise _damaged(self.path, exc) from None

    @property
    def topics(self) -> dict[str, str]:
        """{topic: message type}."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    def image_topics(self) -> list[str]:
        return sorted(t for t, m in self.topics.items() if m in IMAGE_TYPES)

    def count(self, topic: str) -> int:
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def frame_rate(self, topic: str) -> float | None:
        """Mean message rate of ``topic`` over the bag's time span, or None when it cannot tell."""
        count, span_s = self.count(topic), self._reader.duration / 1e9
        return (count - 1) / span_s if count > 1 and span_s > 0 else None

    def image_topic(self, topic: str | None) -> str:
        """The image topic to read: ``topic`` checked against the bag, or its only image topic."""
        images = self.image_topics()
        listed = ", ".join(f"{t} ({self.topics[t].rsplit('/', 1)[-1]})" for t in images) or "none"
        if topic is None:
            if len(images) == 1:
                return images[0]
            if not images:
                raise BagError(f"bag {self.path} has no Image or CompressedImage topic "
                               f"(its topics: {', '.join(sorted(self.topics)) or 'none'})")
            raise BagError(f"bag {self.path} has several image topics; choose one with --topic: {listed}")
        if topic not in self.topics:
            raise BagError(f"bag {self.path} has no topic {topic}; its image topics: {listed}")
        if self.topics[topic] not in IMAGE_TYPES:
            raise BagError(f"topic {topic} in {self.path} is {self.topics[topic]}, not an image; "
                           f"its image topics: {listed}")
        return topic

    def messages(self, topics: list[str] | None = None) -> Iterator[BagMessage]:
        """Messages in log-time order; a damaged bag raises BagError after the readable part."""
        conns = [c for c in self._reader.connections if topics is None or c.topic in topics]
        read = 0
        try:
            for conn, log_time, data in self._reader.messages(connections=conns):
                yield BagMessage(conn.topic, conn.msgtype, log_time, bytes(data))
                read += 1
        except _DAMAGE as exc:
            raise _damaged(self.path, exc, read) from None

    def deserialize(self, message: BagMessage):
        try:
            return self.store.deserialize_cdr(message.data, message.msgtype)
        except Exception as exc:  # rosbags raises several types for a bad CDR buffer
            raise BagError(f"bad {message.msgtype} message on {message.topic} at {message.log_time_ns} ns "
                           f"in {self.path}: {exc}") from None

    def frame(self, message: BagMessage) -> Frame:
        """Decode a stored Image / CompressedImage (Frame.source = its topic)."""
        msg = self.deserialize(message)
        decode = compressed_msg_to_frame if message.msgtype == COMPRESSED_IMAGE else image_msg_to_frame
        try:
            return decode(msg, message.topic)
        except ImageError as exc:
            raise BagError(f"bad image on {message.topic} at {message.log_time_ns} ns in {self.path}: {exc}") from None

    def frames(self, topic: str | None = None) -> Iterator[tuple[Frame, BagMessage]]:
        """(Frame, stored message) for each image on ``topic`` (see ``image_topic``)."""
        for message in self.messages([self.image_topic(topic)]):
            yield self.frame(message), message

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def image_stamps(path: str | Path, topic: str | None = None) -> list[int]:
    """Header stamps of a bag's images in recorded order: frame i of the recording is stamps[i],
    the numbering offline replay and frame-unit labels use (``topic``: see ``image_topic``)."""
    with BagReader(path) as bag:
        stamps = []
        for message in bag.messages([bag.image_topic(topic)]):
            stamp = bag.deserialize(message).header.stamp
            stamps.append(int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec))
    return stamps


def default_image_topic(encoding: str) -> str:
    """image_transport's naming: compressed images live on <base>/compressed."""
    return "/camera/image_raw/compressed" if encoding in ("jpeg", "png") else "/camera/image_raw"


def write_image_bag(frames, path: str | Path, topic: str | None = None, encoding: str = "rgb8",
                    storage: str = DEFAULT_STORAGE, version: int = DEFAULT_BAG_VERSION,
                    frame_id: str | None = None) -> int:
    """Record Frames into a new bag of Image (``encoding``) or CompressedImage ("jpeg"/"png").

    The log time of each message equals its header stamp. Returns the number of frames written;
    when ``frames`` fails half-way the frames before the failure stay in a valid bag.
    """
    topic = topic or default_image_topic(encoding)
    with BagWriter(path, storage, version) as bag:
        count = 0
        for frame in frames:
            msgtype, msg = image_message(bag.store, frame.image, frame.stamp_ns,
                                         frame.frame_id if frame_id is None else frame_id, encoding)
            bag.write(topic, msgtype, frame.stamp_ns, msg)
            count += 1
    return count
