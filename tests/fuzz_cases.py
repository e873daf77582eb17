"""Generated bad input for the ROS-free readers, shared by tests/test_fuzz.py (a few examples, in
CI) and benchmarks/fuzz.py (thousands, counted).

Each target is a Hypothesis strategy plus a ``check_*`` function that feeds one input to the code
under test and returns "converted" or "refused" (the documented error was raised). It asserts what
a conversion must look like, and it lets any other exception through: that is a bug.

- raw images (``images.to_rgb``): every sensor_msgs encoding plus unknown ones, random sizes,
  steps, byte lengths and buffer types (bytes, array('B'), numpy as rclpy/rosbags hand them over);
  documented error ``ImageError``. The oracle says independently whether the fields are consistent,
  so a valid image that is refused fails too.
- compressed images (``images.decode_compressed``): random bytes, real jpeg/png cut short or with
  bytes overwritten, png and jpeg headers claiming any size; ``ImageError``, and nothing decoded
  above ``MAX_COMPRESSED_PIXELS`` (OpenCV allocates what a header claims).
- label files (``evaluation.labels_file.load_labels``): lines built from numbers (negative, nan,
  inf, huge), class names, quotes, comments and raw bytes (invalid UTF-8); ``LabelsError``.
- bags (``evaluation.bags.BagReader``): a real mcap or sqlite3 recording cut at any byte, bytes
  overwritten, metadata.yaml removed or damaged; reading every frame gives frames or ``BagError``.
"""
from __future__ import annotations

import array
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from emotion_perception.evaluation.bags import BagError, BagReader, write_image_bag
from emotion_perception.evaluation.labels_file import Labels, LabelsError, load_labels
from emotion_perception.images import (MAX_COMPRESSED_PIXELS, SUPPORTED_ENCODINGS, ImageError, RawImage, decode_compressed,
                                       encode_compressed, to_rgb)
from emotion_perception.types import Frame

CONVERTED, REFUSED = "converted", "refused"
# No example database (nothing written into the repository), no deadline (the machine is shared).
SETTINGS = dict(deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def fuzz_settings(max_examples: int) -> settings:
    return settings(max_examples=max_examples, **SETTINGS)


# --- raw images -------------------------------------------------------------------------------
# (channels, bytes per channel), written down here from REP-104 / sensor_msgs image_encodings.h,
# not imported from images.py, so that the oracle is independent of the code under test.
LAYOUT = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "mono16": 2, "16UC1": 2,
          "rgb16": 6, "bgr16": 6, "uyvy": 2, "yuv422": 2, "yuyv": 2, "yuv422_yuy2": 2}
YUV = {"uyvy", "yuv422", "yuyv", "yuv422_yuy2"}
UNKNOWN_ENCODINGS = ["", "RGB8", "rgb8 ", "32FC1", "bayer_rggb8", "nv21", "jpeg", "64FC4"]


def random_bytes(length: int):
    """``length`` random bytes from a drawn seed (cheap for Hypothesis, whatever the length)."""
    return st.integers(0, 2**32 - 1).map(lambda seed: np.random.default_rng(seed).bytes(length))


def buffer_types():
    return st.sampled_from([bytes, bytearray, lambda b: array.array("B", b), lambda b: np.frombuffer(b, np.uint8)])


@st.composite
def raw_images(draw) -> RawImage:
    encoding = draw(st.sampled_from(list(SUPPORTED_ENCODINGS) + UNKNOWN_ENCODINGS))
    height = draw(st.integers(-2, 48))
    width = draw(st.integers(-2, 48))
    row = max(width, 0) * LAYOUT.get(encoding, 3)
    step = draw(st.one_of(st.just(row), st.integers(row, row + 9), st.integers(-5, 300)))
    size = max(step, 0) * max(height, 0)
    length = draw(st.one_of(st.just(size), st.integers(max(size - 4, 0), size + 4), st.integers(0, 4096)))
    data = draw(random_bytes(length))
    return RawImage(height, width, encoding, step, draw(buffer_types())(data), draw(st.booleans()))


def raw_image_is_valid(img: RawImage) -> bool:
    """Independent statement of when a sensor_msgs/Image's fields are consistent."""
    if img.encoding not in LAYOUT or img.height <= 0 or img.width <= 0:
        return False
    if img.encoding in YUV and img.width % 2:
        return False
    return img.step >= img.width * LAYOUT[img.encoding] and len(img.data) == img.step * img.height


def check_raw_image(img: RawImage) -> str:
    valid = raw_image_is_valid(img)
    try:
        rgb = to_rgb(img)
    except ImageError:
        assert not valid, f"a valid {img.encoding} image was refused"
        return REFUSED
    assert valid, f"an inconsistent image was accepted: {img.encoding} {img.width}x{img.height} step {img.step}, {len(img.data)} bytes"
    assert rgb.shape == (img.height, img.width, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    return CONVERTED


# --- compressed images ------------------------------------------------------------------------
FORMATS = ["jpeg", "png", "rgb8; jpeg compressed bgr8", "bgr8; png compressed bgr8", "PNG", "jpg", "bmp", "", "tiff"]


def _png_with_size(width: int, height: int, body: bytes) -> bytes:
    """A PNG signature and IHDR (correct CRC) claiming width x height RGB, then ``body``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + body


@st.composite
def compressed_images(draw) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(FORMATS))
    kind = draw(st.sampled_from(["random", "truncated", "overwritten", "whole", "png_size", "jpeg_size"]))
    if kind == "random":
        return fmt, draw(st.binary(max_size=2048))
    if kind == "png_size":
        dims = st.integers(0, 2**31 - 1) | st.integers(0, 70000)
        return fmt, _png_with_size(draw(dims), draw(dims), draw(st.binary(max_size=256)))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rgb = np.frombuffer(draw(random_bytes(h * w * 3)), np.uint8).reshape(h, w, 3)
    _, data = encode_compressed(rgb, draw(st.sampled_from(["jpeg", "png"])))
    if kind == "jpeg_size" and b"\xff\xc0" in data:  # baseline JPEG: claim any 16-bit size in SOF0
        sof = data.index(b"\xff\xc0")
        data = data[:sof + 5] + struct.pack(">HH", draw(st.integers(0, 65535)), draw(st.integers(0, 65535))) + data[sof + 9:]
    if kind == "truncated":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "overwritten":
        at = draw(st.integers(0, len(data) - 1))
        patch = draw(st.binary(min_size=1, max_size=16))
        data = data[:at] + patch + data[at + len(patch):]
    return fmt, data


def check_compressed(case: tuple[str, bytes]) -> str:
    fmt, data = case
    try:
        rgb = decode_compressed(fmt, data)
    except ImageError:
        return REFUSED
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8 and rgb.size > 0
    assert rgb.shape[0] * rgb.shape[1] <= MAX_COMPRESSED_PIXELS
    return CONVERTED


# --- label files ------------------------------------------------------------------------------
CELLS = ["0", "1", "10", "45", "2.5", "-1", "1e309", "nan", "inf", "-0", "0x10", "", " ", "1,5",
         "happy", "Happy", "HAPPINESS", "neutral", "fear", "joy?", "none", "start", "end", "label",
         "face_id", "3", '"', '"happy"', "#", "é", "\t", "\x00"]


NUMBERS = ["0", "5", "10", "12.5", "30", "45", "-1", "nan", "inf", "-inf", "1e309", "NaN", "1_0", " 7 "]
CLASSES = ["happy", "Sad", "NEUTRAL", "anger", "surprised", "disgust", "fear", "joy?", "", "none"]


@st.composite
def label_files(draw) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))  # not even text
    lines = []
    number = st.integers(0, 99).map(str) | st.sampled_from(NUMBERS)
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 3)):  # shaped like a range: start,end,label[,face_id]
            cells = [draw(number), draw(number), draw(st.sampled_from(CLASSES))]
            cells += draw(st.lists(st.sampled_from(["", "1", "face 2", "3"]), max_size=2))
        else:
            cells = draw(st.lists(st.sampled_from(CELLS) | st.text(max_size=6), max_size=6))
        comment = draw(st.sampled_from(["", "", " # note", "#"]))
        lines.append(",".join(cells) + comment)
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines).encode("utf-8", "surrogatepass")


def check_label_file(content: bytes, directory: Path) -> str:
    path = directory / "labels.csv"
    path.write_bytes(content)
    try:
        labels = load_labels(path, "frames")
    except LabelsError:
        return REFUSED
    assert isinstance(labels, Labels) and labels.ranges
    for r in labels.ranges:
        assert np.isfinite([r.start, r.end]).all() and 0 <= r.start < r.end, r
    return CONVERTED


# --- bags -------------------------------------------------------------------------------------
def make_bags(directory: Path) -> dict[str, Path]:
    """Two real 6-frame recordings (mcap with rgb8 images, sqlite3 with jpeg), built once."""
    rng = np.random.default_rng(0)
    frames = [Frame(rng.integers(0, 255, (24, 32, 3), np.uint8), stamp_ns=(i + 1) * 10**8, frame_id="cam")
              for i in range(6)]
    bags = {}
    for storage, encoding in (("mcap", "rgb8"), ("sqlite3", "jpeg")):
        bags[storage] = directory / f"good_{storage}"
        write_image_bag(frames, bags[storage], encoding=encoding, storage=storage)
    return bags


def _storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))


@st.composite
def bag_damage(draw) -> tuple:
    storage = draw(st.sampled_from(["mcap", "sqlite3"]))
    kind = draw(st.sampled_from(["truncate", "overwrite", "no_metadata", "bad_metadata", "bare_file_truncated"]))
    position = draw(st.floats(0, 1, exclude_max=True))
    patch = draw(st.binary(min_size=1, max_size=64))
    return storage, kind, position, patch


def damage_bag(good: Path, out: Path, case: tuple) -> Path:
    """A damaged copy of ``good`` at ``out``; returns what to open (the directory or a bare file)."""
    _, kind, position, patch = case
    shutil.copytree(good, out)
    data_file = _storage_file(out)
    target = out / "metadata.yaml" if kind == "bad_metadata" else data_file
    content = target.read_bytes()
    at = int(position * len(content))
    if kind in ("truncate", "bare_file_truncated"):
        target.write_bytes(content[:at])
    elif kind in ("overwrite", "bad_metadata"):
        target.write_bytes(content[:at] + patch + content[at + len(patch):])
    elif kind == "no_metadata":
        (out / "metadata.yaml").unlink()
    return data_file if kind == "bare_file_truncated" else out


def check_bag(case: tuple, bags: dict[str, Path]) -> str:
    with tempfile.TemporaryDirectory(prefix="fuzz_bag_") as tmp:
        path = damage_bag(bags[case[0]], Path(tmp) / "bag", case)
        try:
            with BagReader(path) as reader:
                frames = [frame for frame, _ in reader.frames()]
        except BagError:
            return REFUSED
    for frame in frames:
        assert frame.image.ndim == 3 and frame.image.shape[2] == 3 and frame.image.dtype == np.uint8
    return CONVERTED
