"""Image conversion between sensor_msgs encodings and RGB, against a real photo."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from emotion_perception.images import (
    SUPPORTED_ENCODINGS,
    ImageError,
    RawImage,
    check_rgb,
    decode_compressed,
    encode_compressed,
    from_rgb,
    to_rgb,
)

LOSSLESS = ["rgb8", "bgr8", "rgba8", "bgra8"]
GREY = ["mono8", "8UC1", "mono16", "16UC1"]
YUV = ["yuv422", "uyvy", "yuyv", "yuv422_yuy2"]


@pytest.fixture(scope="module")
def photo(astronaut):
    return np.ascontiguousarray(astronaut[100:340, 60:380])  # 240x320, the face and some scene


def grey_of(rgb):
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def test_every_encoding_is_covered():
    assert set(LOSSLESS + GREY + YUV + ["rgb16", "bgr16"]) == set(SUPPORTED_ENCODINGS)


@pytest.mark.parametrize("encoding", LOSSLESS + ["rgb16", "bgr16"])
def test_colour_encodings_round_trip_exactly(photo, encoding):
    raw = from_rgb(photo, encoding)
    np.testing.assert_array_equal(to_rgb(raw), photo)


@pytest.mark.parametrize("encoding", GREY)
def test_grey_encodings_round_trip_to_grey(photo, encoding):
    np.testing.assert_array_equal(to_rgb(from_rgb(photo, encoding)), grey_of(photo))


@pytest.mark.parametrize("encoding", YUV)
def test_yuv422_round_trip_within_chroma_subsampling_error(photo, encoding):
    back = to_rgb(from_rgb(photo, encoding)).astype(np.int16)
    err = np.abs(back - photo.astype(np.int16))
    assert err.mean() < 2.5  # 4:2:2 halves the chroma resolution; luma is exact up to rounding
    assert np.percentile(err, 99) < 20


def test_bgr_really_swaps_channels(photo):
    raw = from_rgb(photo, "bgr8")
    first = np.frombuffer(raw.data, np.uint8)[:3]
    assert list(first) == list(photo[0, 0, ::-1])


def test_uyvy_and_yuyv_byte_orders_differ(photo):
    uyvy, yuyv = from_rgb(photo, "uyvy").data, from_rgb(photo, "yuyv").data
    a = np.frombuffer(uyvy, np.uint8).reshape(-1, 4)
    b = np.frombuffer(yuyv, np.uint8).reshape(-1, 4)
    np.testing.assert_array_equal(a[:, [1, 0, 3, 2]], b)


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "mono16", "yuv422", "bgra8"])
def test_padded_rows(photo, encoding):
    plain = to_rgb(from_rgb(photo, encoding))
    padded = from_rgb(photo, encoding, row_padding=13)
    assert padded.step > padded.width * (len(from_rgb(photo, encoding).data) // (photo.shape[0] * photo.shape[1]))
    np.testing.assert_array_equal(to_rgb(padded), plain)


def test_big_endian_16_bit(photo):
    little = from_rgb(photo, "mono16")
    words = np.frombuffer(little.data, "<u2").astype(">u2")
    big = RawImage(little.height, little.width, "mono16", little.step, words.tobytes(), True)
    np.testing.assert_array_equal(to_rgb(big), grey_of(photo))


@pytest.mark.parametrize(
    "raw, message",
    [
        (RawImage(2, 2, "rgb9", 6, bytes(12)), "unsupported image encoding 'rgb9'"),
        (RawImage(2, 2, "rgb8", 5, bytes(10)), "step 5 is smaller than"),
        (RawImage(2, 2, "rgb8", 6, bytes(11)), "data has 11 bytes but step*height = 6*2 = 12"),
        (RawImage(0, 2, "rgb8", 6, b""), "empty image"),
        (RawImage(2, 3, "yuv422", 6, bytes(12)), "even width"),
        (RawImage(2, 2, "mono16", 4, bytes(7)), "data has 7 bytes"),
    ],
)
def test_malformed_buffers_raise_one_clear_error(raw, message):
    with pytest.raises(ImageError) as err:
        to_rgb(raw)
    assert message in str(err.value)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_round_trip(photo, fmt):
    field, data = encode_compressed(photo, fmt)
    assert fmt in field
    back = decode_compressed(field, data)
    assert back.shape == photo.shape
    if fmt == "png":
        np.testing.assert_array_equal(back, photo)
    else:
        assert np.abs(back.astype(int) - photo).mean() < 3


@pytest.mark.parametrize(
    "fmt, data, message",
    [
        ("jpeg", b"", "empty jpeg buffer"),
        ("jpeg", b"\xff\xd8\xff\xe0 not really a jpeg", "could not decode"),
        ("tiff", b"II*\x00", "unsupported compressed format"),
    ],
)
def test_corrupt_compressed_images(fmt, data, message):
    with pytest.raises(ImageError, match=message):
        decode_compressed(fmt, data)


def test_truncated_jpeg_is_rejected(photo):
    _, data = encode_compressed(photo, "jpeg")
    with pytest.raises(ImageError, match="could not decode"):
        decode_compressed("jpeg", data[:200])


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 4), np.uint8), "HxWx3"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_check_rgb(array, message):
    with pytest.raises(ImageError, match=message):
        check_rgb(array)


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header (SOF0) is patched to claim width x height."""
    _, data = encode_compressed(np.zeros((16, 16, 3), np.uint8), "jpeg")
    sof = data.index(b"\xff\xc0")
    return data[:sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_a_compressed_image_claiming_a_huge_size_is_refused_before_decoding():
    """Found by benchmarks/fuzz.py: OpenCV allocates what the header claims; a 600-byte JPEG
    claiming 20000x20000 took 2.3 GB and decoded, one claiming 65000x65000 ended the process."""
    with pytest.raises(ImageError, match="jpeg header claims 9000x9000 pixels; the limit is 67108864"):
        decode_compressed("jpeg", _jpeg_claiming(9000, 9000))
    assert decode_compressed("jpeg", _jpeg_claiming(16, 16)).shape == (16, 16, 3)
    ihdr = struct.pack(">IIBBBBB", 9000, 9000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"") + _png_chunk(b"IEND", b"")
    with pytest.raises(ImageError, match="png header claims 9000x9000"):
        decode_compressed("png", png)


def test_a_png_chunk_longer_than_the_buffer_is_refused():
    """Found by benchmarks/fuzz.py: a 200-byte PNG whose IDAT length was overwritten with 0xfbdfdefd
    made OpenCV allocate 3.5 GB before it gave up."""
    _, png = encode_compressed(np.zeros((1, 33, 3), np.uint8), "png")
    bad = png[:33] + b"\xfb\xdf\xde\xfd" + png[37:]
    with pytest.raises(ImageError, match=r"chunk b'IDAT' at byte 33 claims 4225752829 bytes"):
        decode_compressed("png", bad)
    with pytest.raises(ImageError, match="truncated before the IEND chunk"):
        decode_compressed("png", png[:-6])


@pytest.mark.parametrize("data", [b"RIFF\x10\x00\x00\x00WEBPVP8 ", b"BM" + bytes(60), b"GIF89a" + bytes(20)])
def test_only_png_and_jpeg_streams_are_decoded(data):
    with pytest.raises(ImageError, match="neither a PNG nor a JPEG stream"):
        decode_compressed("jpeg", data)
