"""sensor_msgs image encodings <-> numpy RGB, without cv_bridge.

The core works on HxWx3 uint8 RGB arrays. These functions take the *fields* of a
``sensor_msgs/Image`` (or ``CompressedImage``) rather than the message, so they run without ROS;
``emotion_perception.messages`` passes message fields in. Every malformed input raises
``ImageError`` with a message naming the problem (encoding, size, step).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class ImageError(ValueError):
    """A buffer that cannot be a valid image of the declared encoding and size."""


@dataclass(frozen=True)
class RawImage:
    """The pixel fields of a sensor_msgs/Image."""

    height: int
    width: int
    encoding: str
    step: int
    data: bytes
    is_bigendian: bool = False


# encoding -> (channels, bytes per channel). yuv422 in ROS is UYVY byte order.
_LAYOUT = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "8UC1": (1, 1),
    "mono16": (1, 2),
    "16UC1": (1, 2),
    "rgb16": (3, 2),
    "bgr16": (3, 2),
    "uyvy": (2, 1),
    "yuv422": (2, 1),
    "yuyv": (2, 1),
    "yuv422_yuy2": (2, 1),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUT)
_UYVY = {"uyvy", "yuv422"}
_YUYV = {"yuyv", "yuv422_yuy2"}


def _rows(img: RawImage) -> np.ndarray:
    """Validate sizes and return the pixel bytes as (height, width * bytes_per_pixel) uint8."""
    if img.encoding not in _LAYOUT:
        raise ImageError(
            f"unsupported image encoding {img.encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    if img.height <= 0 or img.width <= 0:
        raise ImageError(f"empty image: {img.width}x{img.height} ({img.encoding})")
    channels, depth = _LAYOUT[img.encoding]
    row_bytes = img.width * channels * depth
    if img.encoding in _UYVY | _YUYV and img.width % 2:
        raise ImageError(f"{img.encoding} needs an even width, got {img.width}")
    if img.step < row_bytes:
        raise ImageError(
            f"step {img.step} is smaller than width*bytes_per_pixel = {img.width}*{channels * depth}"
            f" = {row_bytes} for {img.encoding}"
        )
    expected = img.step * img.height
    if len(img.data) != expected:
        raise ImageError(
            f"data has {len(img.data)} bytes but step*height = {img.step}*{img.height} = {expected}"
            f" ({img.encoding}, {img.width}x{img.height})"
        )
    buf = np.frombuffer(img.data, dtype=np.uint8).reshape(img.height, img.step)
    return buf[:, :row_bytes]


def _yuv422_to_rgb(pixels: np.ndarray, uyvy: bool) -> np.ndarray:
    code = cv2.COLOR_YUV2RGB_UYVY if uyvy else cv2.COLOR_YUV2RGB_YUYV
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


def to_rgb(img: RawImage) -> np.ndarray:
    """Decode a raw image to a contiguous HxWx3 uint8 RGB array (16-bit scaled to 8-bit)."""
    rows = _rows(img)
    channels, depth = _LAYOUT[img.encoding]
    if img.encoding in _UYVY | _YUYV:
        return _yuv422_to_rgb(rows.reshape(img.height, img.width, 2), img.encoding in _UYVY)
    if depth == 2:
        dtype = np.dtype(">u2" if img.is_bigendian else "<u2")
        values = np.ascontiguousarray(rows).view(dtype).reshape(img.height, img.width, channels)
        pixels = (values.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    else:
        pixels = rows.reshape(img.height, img.width, channels)
    if channels == 1:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    if img.encoding.startswith("bgr"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


# BT.601 studio range (Y 16..235, U/V 16..240): what cameras send and what OpenCV's
# YUV2RGB_UYVY/YUYV decoders expect. (cv2.COLOR_RGB2YUV is full range and would not round-trip.)
_RGB_TO_YUV601 = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float32
) / 255.0
_YUV_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float32)


def _rgb_to_yuv422(rgb: np.ndarray, uyvy: bool) -> np.ndarray:
    """Pack RGB as 4:2:2 (BT.601 studio range, chroma averaged over each pixel pair)."""
    yuv = rgb.astype(np.float32) @ _RGB_TO_YUV601.T + _YUV_OFFSET
    h, w = rgb.shape[:2]
    y = yuv[:, :, 0]
    u = yuv[:, :, 1].reshape(h, w // 2, 2).mean(axis=2)
    v = yuv[:, :, 2].reshape(h, w // 2, 2).mean(axis=2)
    out = np.empty((h, w // 2, 4), dtype=np.float32)
    if uyvy:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    return np.rint(out).astype(np.uint8).reshape(h, w * 2)  # studio range: Y 16..235, U and V 16..240


def from_rgb(rgb: np.ndarray, encoding: str = "rgb8", *, row_padding: int = 0) -> RawImage:
    """Encode an HxWx3 uint8 RGB array as a raw image (for publishing and tests).

    ``row_padding`` adds bytes at the end of each row (step > width * bytes per pixel), as some
    camera drivers do.
    """
    check_rgb(rgb)
    if encoding not in _LAYOUT:
        raise ImageError(f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    h, w = rgb.shape[:2]
    if encoding in _UYVY | _YUYV:
        if w % 2:
            raise ImageError(f"{encoding} needs an even width, got {w}")
        rows = _rgb_to_yuv422(rgb, encoding in _UYVY)
    else:
        channels, depth = _LAYOUT[encoding]
        if channels == 1:
            pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
        elif encoding.startswith("bgr"):
            pixels = rgb[:, :, ::-1]
        else:
            pixels = rgb
        if channels == 4:
            pixels = np.concatenate([pixels, np.full((h, w, 1), 255, np.uint8)], axis=2)
        if depth == 2:
            pixels = (pixels.astype("<u2") * 257).astype("<u2")
        rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(h, -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((h, row_padding), np.uint8)], axis=1)
    return RawImage(h, w, encoding, rows.shape[1], rows.tobytes(), False)


def check_rgb(rgb: np.ndarray) -> None:
    """Raise ImageError unless ``rgb`` is a non-empty HxWx3 uint8 array."""
    if not isinstance(rgb, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels, got {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError(f"empty image of shape {rgb.shape}")


# Far above any robot camera (8K is 33 MP). OpenCV allocates the size a header claims before it
# decodes: without this bound a 600-byte JPEG claiming 65000x65000 pixels asks for 12 GB.
MAX_COMPRESSED_PIXELS = 8192 * 8192
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from IHDR, after checking that every chunk lies inside the buffer."""
    if data[12:16] != b"IHDR" or len(data) < 24:
        raise ValueError("no IHDR chunk at the start")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 12 > len(data):
            raise ValueError("truncated before the IEND chunk")
        length = int.from_bytes(data[pos:pos + 4], "big")
        if pos + 12 + length > len(data):
            raise ValueError(f"chunk {data[pos + 4:pos + 8]!r} at byte {pos} claims {length} bytes, {len(data) - pos - 12} left")
        if data[pos + 4:pos + 8] == b"IEND":
            return width, height
        pos += 12 + length


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF segment, walking the marker segments before it."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            raise ValueError("no frame header (SOF) before the image data")
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            return int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    raise ValueError("truncated before the frame header (SOF)")


def compressed_size(data: bytes) -> tuple[str, int, int]:
    """("png" | "jpeg", width, height) as the stream's header claims; ImageError if it has none."""
    data = bytes(data)
    kind = "png" if data.startswith(_PNG_SIGNATURE) else "jpeg" if data.startswith(b"\xff\xd8") else None
    if kind is None:
        raise ImageError(f"could not decode {len(data)} bytes: neither a PNG nor a JPEG stream")
    try:
        width, height = (_png_size if kind == "png" else _jpeg_size)(data)
    except ValueError as exc:
        raise ImageError(f"could not decode {len(data)} bytes as {kind} ({exc})") from None
    return kind, width, height


def decode_compressed(fmt: str, data: bytes) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg or png) to RGB.

    ``fmt`` is the message's format field, e.g. "jpeg", "png" or "bgr8; jpeg compressed bgr8".
    The header is read first: a stream that is neither PNG nor JPEG, whose structure runs past
    the buffer, or that claims more than ``MAX_COMPRESSED_PIXELS`` is refused before decoding.
    """
    kind = fmt.lower()
    if not any(k in kind for k in ("jpeg", "jpg", "png")):
        raise ImageError(f"unsupported compressed format {fmt!r}; supported: jpeg, png")
    if not data:
        raise ImageError(f"empty {fmt} buffer")
    stream, width, height = compressed_size(data)
    if not 0 < width * height <= MAX_COMPRESSED_PIXELS:
        raise ImageError(f"{stream} header claims {width}x{height} pixels; the limit is {MAX_COMPRESSED_PIXELS} pixels")
    bgr = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"could not decode {len(data)} bytes as {fmt} (corrupt or truncated)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> tuple[str, bytes]:
    """Encode RGB as jpeg or png; returns (format field as image_transport writes it, bytes)."""
    check_rgb(rgb)
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt.lower())
    if ext is None:
        raise ImageError(f"unsupported compressed format {fmt!r}; supported: jpeg, png")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    name = "jpeg" if ext == ".jpg" else "png"
    return f"rgb8; {name} compressed bgr8", buf.tobytes()
