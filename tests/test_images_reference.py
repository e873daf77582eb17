"""Image conversion against independent references: hand-built byte buffers, the BT.601 spec and
Pillow's codecs. (tests/test_images.py checks round trips through our own encoder and decoder,
which cannot see a byte-order bug made the same way in both directions.)"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from emotion_perception.images import ImageError, RawImage, decode_compressed, encode_compressed, from_rgb, to_rgb

PAD = 0xEE  # padding bytes at row ends: must never reach a pixel


def raw(encoding, width, rows, *, pad=0, bigendian=False):
    """A RawImage from rows of byte values, each row padded with `pad` bytes of PAD."""
    data = b"".join(bytes(r) + bytes([PAD] * pad) for r in rows)
    return RawImage(len(rows), width, encoding, len(rows[0]) + pad, data, bigendian)


def bt601_studio_to_rgb(y, u, v):
    """ITU-R BT.601 studio-range YCbCr -> RGB, the formula from the standard (not OpenCV)."""
    c, d, e = y - 16.0, u - 128.0, v - 128.0
    rgb = [1.164 * c + 1.596 * e, 1.164 * c - 0.392 * d - 0.813 * e, 1.164 * c + 2.017 * d]
    return [min(255, max(0, round(x))) for x in rgb]


# --- decoding: bytes laid out by hand -------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding, pixel_bytes, expected",
    [
        ("rgb8", [10, 20, 30], [10, 20, 30]),
        ("bgr8", [10, 20, 30], [30, 20, 10]),
        ("rgba8", [10, 20, 30, 99], [10, 20, 30]),
        ("bgra8", [10, 20, 30, 99], [30, 20, 10]),
        ("mono8", [77], [77, 77, 77]),
        ("8UC1", [5], [5, 5, 5]),
    ],
)
def test_eight_bit_layouts(encoding, pixel_bytes, expected):
    second = [b + 1 for b in pixel_bytes]
    image = raw(encoding, 2, [pixel_bytes + second, second + pixel_bytes], pad=3)
    rgb = to_rgb(image)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == expected
    assert rgb[1, 1].tolist() == expected
    assert rgb[0, 1].tolist() == [x + 1 for x in expected]


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_sixteen_bit_grey_scales_by_65535_in_the_declared_byte_order(encoding, bigendian):
    value = 0x8040  # 32832 -> 32832 * 255 // 65535 = 127; read the other way (0x4080) it is 64
    first, second = (0x80, 0x40) if bigendian else (0x40, 0x80)
    image = raw(encoding, 2, [[first, second, 0xFF, 0xFF]], pad=2, bigendian=bigendian)
    rgb = to_rgb(image)
    assert rgb[0, 0].tolist() == [value * 255 // 65535] * 3 == [127] * 3
    assert rgb[0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("encoding, order", [("rgb16", (0, 1, 2)), ("bgr16", (2, 1, 0))])
def test_sixteen_bit_colour(encoding, order):
    channels = [0x0000, 0x8040, 0xFFFF]  # little-endian words
    data = [b for word in channels for b in (word & 0xFF, word >> 8)]
    rgb = to_rgb(raw(encoding, 1, [data]))
    scaled = [c * 255 // 65535 for c in channels]
    assert rgb[0, 0].tolist() == [scaled[i] for i in order]


# one pixel pair with distinct Y0, Y1, U, V, so any byte-order slip changes the colours
Y0, Y1, U, V = 60, 180, 90, 200


@pytest.mark.parametrize(
    "encoding, pair",
    [
        ("yuv422", [U, Y0, V, Y1]),  # ROS's yuv422 is UYVY
        ("uyvy", [U, Y0, V, Y1]),
        ("yuyv", [Y0, U, Y1, V]),
        ("yuv422_yuy2", [Y0, U, Y1, V]),
    ],
)
def test_yuv422_byte_orders_decode_by_the_bt601_formula(encoding, pair):
    rgb = to_rgb(raw(encoding, 2, [pair, pair], pad=4)).astype(int)
    for column, luma in ((0, Y0), (1, Y1)):
        expected = np.array(bt601_studio_to_rgb(luma, U, V))
        assert np.abs(rgb[1, column] - expected).max() <= 2, (encoding, column, rgb[1, column], expected)


def test_padding_and_size_mismatches_are_refused_with_the_numbers():
    with pytest.raises(ImageError, match="step 5 is smaller"):
        to_rgb(RawImage(1, 2, "rgb8", 5, bytes(5)))
    with pytest.raises(ImageError, match="data has 11 bytes but step\\*height = 6\\*2 = 12"):
        to_rgb(RawImage(2, 2, "rgb8", 6, bytes(11)))
    with pytest.raises(ImageError, match="even width"):
        to_rgb(RawImage(1, 3, "yuv422", 6, bytes(6)))
    with pytest.raises(ImageError, match="empty image"):
        to_rgb(RawImage(0, 2, "rgb8", 6, b""))
    with pytest.raises(ImageError, match="unsupported image encoding 'rgb9'"):
        to_rgb(RawImage(1, 1, "rgb9", 3, bytes(3)))


# --- encoding: the exact bytes a ROS subscriber will read ------------------------------------------

RED, WHITE, BLACK = (255, 0, 0), (255, 255, 255), (0, 0, 0)
# BT.601 studio range from the spec's matrix: red -> Y 81.48, Cb 90.2, Cr 240; white -> 235/128/128
RED_Y, RED_U, RED_V, WHITE_Y, BLACK_Y = 81, 90, 240, 235, 16


def test_yuv422_encoder_writes_uyvy_bytes():
    rgb = np.array([[RED, RED, WHITE, BLACK]], np.uint8)
    image = from_rgb(rgb, "yuv422")
    assert (image.step, image.encoding) == (8, "yuv422")
    grey_u = grey_v = 128
    assert list(image.data) == [RED_U, RED_Y, RED_V, RED_Y, grey_u, WHITE_Y, grey_v, BLACK_Y]


def test_yuyv_encoder_writes_yuyv_bytes():
    rgb = np.array([[RED, RED, WHITE, BLACK]], np.uint8)
    assert list(from_rgb(rgb, "yuyv").data) == [RED_Y, RED_U, RED_Y, RED_V, WHITE_Y, 128, BLACK_Y, 128]


def test_yuv422_encoder_averages_chroma_over_the_pair():
    # red + white: U = (90.2 + 128) / 2 = 109.1, V = (240 + 128) / 2 = 184
    image = from_rgb(np.array([[RED, WHITE]], np.uint8), "uyvy")
    assert list(image.data) == [109, RED_Y, 184, WHITE_Y]


@pytest.mark.parametrize(
    "encoding, expected",
    [
        ("rgb8", [255, 0, 0, 10, 20, 30]),
        ("bgr8", [0, 0, 255, 30, 20, 10]),
        ("rgba8", [255, 0, 0, 255, 10, 20, 30, 255]),
        ("bgra8", [0, 0, 255, 255, 30, 20, 10, 255]),
        # OpenCV's grey is 0.299 R + 0.587 G + 0.114 B: red -> 76, (10, 20, 30) -> 18
        ("mono8", [76, 18]),
        ("8UC1", [76, 18]),
        ("mono16", [76, 76, 18, 18]),  # v * 257 = (v << 8) | v
        ("rgb16", [255, 255, 0, 0, 0, 0, 10, 10, 20, 20, 30, 30]),
        ("bgr16", [0, 0, 0, 0, 255, 255, 30, 30, 20, 20, 10, 10]),
    ],
)
def test_encoders_write_the_documented_bytes(encoding, expected):
    image = from_rgb(np.array([[RED, (10, 20, 30)]], np.uint8), encoding, row_padding=2)
    assert image.step == len(expected) + 2
    assert list(image.data) == expected + [0, 0]
    assert (image.height, image.width, image.is_bigendian) == (1, 2, False)


# --- compressed: a PNG built byte by byte, and Pillow as the independent codec ----------------------


def png_bytes(pixels):
    """A minimal 8-bit RGB PNG from rows of (r, g, b), built from the PNG spec with zlib only."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width = len(pixels), len(pixels[0])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    scanlines = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")


def test_hand_built_png_decodes_to_rgb():
    rgb = decode_compressed("png", png_bytes([[RED, (0, 0, 255)], [(1, 2, 3), WHITE]]))
    assert rgb.tolist() == [[list(RED), [0, 0, 255]], [[1, 2, 3], list(WHITE)]]


def test_format_field_variants_are_accepted():
    data = png_bytes([[RED]])
    for fmt in ("png", "PNG", "bgr8; png compressed bgr8", "rgb8; jpeg compressed bgr8"):
        assert decode_compressed(fmt, data)[0, 0].tolist() == list(RED)


def test_encoded_png_is_read_back_exactly_by_pillow():
    rgb = np.array([[RED, (0, 0, 255)], [(1, 2, 3), WHITE]], np.uint8)
    fmt, data = encode_compressed(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), rgb)


def test_encoded_jpeg_keeps_colours_and_honours_quality():
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16] = RED
    rgb[:, 16:] = (0, 0, 255)
    fmt, data = encode_compressed(rgb, "jpeg", quality=95)
    assert fmt == "rgb8; jpeg compressed bgr8" and data[:2] == b"\xff\xd8"
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert np.abs(decoded[:, 2:14] - RED).max() < 12 and np.abs(decoded[:, 18:30] - (0, 0, 255)).max() < 12
    _, small = encode_compressed(rgb, "jpg", quality=10)
    assert len(small) < len(data)


def test_bad_compressed_input_is_one_clear_error():
    with pytest.raises(ImageError, match="unsupported compressed format 'tiff'"):
        decode_compressed("tiff", b"x")
    with pytest.raises(ImageError, match="empty png buffer"):
        decode_compressed("png", b"")
    with pytest.raises(ImageError, match="could not decode 20 bytes as png"):
        decode_compressed("png", png_bytes([[RED]])[:20])
    with pytest.raises(ImageError, match="unsupported compressed format 'bmp'"):
        encode_compressed(np.zeros((2, 2, 3), np.uint8), "bmp")
