"""Image conversion against independent references: hand-built byte buffers, the BT.601 spec and
Pillow's codecs. (tests/test_images.py checks round trips through our own encoder and decoder,
which cannot see a byte-order bug made the same way in both directions.)"""
from __future__ import annotations

import io
import re
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from emotion_perception.images import (SUPPORTED_ENCODINGS, ImageError, RawImage, check_rgb, compressed_size,
                                       decode_compressed, encode_compressed, from_rgb, to_rgb)

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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, body: bytes = b"", length: int | None = None) -> bytes:
    """A PNG chunk: length (u32 BE; ``length`` to make it lie), type, body, CRC-32 of type + body."""
    size = len(body) if length is None else length
    return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(pixels):
    """A minimal 8-bit RGB PNG from rows of (r, g, b), built from the PNG spec with zlib only."""
    height, width = len(pixels), len(pixels[0])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    scanlines = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(scanlines))
            + png_chunk(b"IEND"))


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


# --- compressed headers, byte by byte (PNG spec: 8-byte signature, then chunks of length u32 BE,
# type, data, CRC; JPEG: FFD8, then FF-marker segments whose u16 BE length counts itself; SOFn holds
# precision, height, width).

IHDR = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 300, 200, 8, 2, 0, 0, 0))


@pytest.mark.parametrize("data, expected", [
    (PNG_SIGNATURE + IHDR + png_chunk(b"IEND"), ("png", 300, 200)),
    (PNG_SIGNATURE + IHDR + png_chunk(b"tEXt", b"a=b") + png_chunk(b"IEND"), ("png", 300, 200)),  # walked past
])
def test_png_size_from_ihdr(data, expected):
    assert compressed_size(data) == expected


@pytest.mark.parametrize("data, reason", [
    (PNG_SIGNATURE + png_chunk(b"tEXt", b"a=b"), "no IHDR chunk at the start"),
    (PNG_SIGNATURE + IHDR[:15], "no IHDR chunk at the start"),  # 23 bytes: the height is cut
    (PNG_SIGNATURE + IHDR, "truncated before the IEND chunk"),
    (PNG_SIGNATURE + IHDR + png_chunk(b"IEND")[:11], "truncated before the IEND chunk"),
    (PNG_SIGNATURE + IHDR + png_chunk(b"tEXt", b"a=b", length=1000) + png_chunk(b"IEND"),
     "chunk b'tEXt' at byte 33 claims 1000 bytes, 15 left"),
    (PNG_SIGNATURE + IHDR + png_chunk(b"tEXt", b"a=b", length=4), "chunk b'tEXt' at byte 33 claims 4 bytes, 3 left"),
])
def test_png_header_damage_is_named(data, reason):
    with pytest.raises(ImageError, match=re.escape(f"could not decode {len(data)} bytes as png ({reason})") + "$"):
        compressed_size(data)


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _sof(marker: int = 0xC0, height: int = 480, width: int = 640) -> bytes:
    return _segment(marker, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00" * 3)


APP0 = _segment(0xE0, b"JFIF\0\1\1\0\0\1\0\1\0\0")
DHT = _segment(0xC4, b"\0" * 17)  # 0xC4 is a Huffman table, not a frame header


@pytest.mark.parametrize("data, expected", [
    (b"\xff\xd8" + APP0 + _sof(), (640, 480)),
    (b"\xff\xd8" + APP0 + DHT + _segment(0xC8, b"x") + _segment(0xCC, b"yy") + _sof(0xC2, 3, 4000), (4000, 3)),
    (b"\xff\xd8\xff\xff\xff" + _sof(0xCF, 1, 2), (2, 1)),  # fill bytes before the marker
    (b"\xff\xd8\xff\xd0\xff\xd7\xff\x01" + _sof(0xC1), (640, 480)),  # RSTn and TEM carry no length
    (b"\xff\xd8" + _sof()[:9], (640, 480)),  # the header ends right after the width
] + [(b"\xff\xd8" + _sof(m, 7, 9), (9, 7)) for m in (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE)])
def test_jpeg_size_from_the_first_frame_header(data, expected):
    assert compressed_size(data) == ("jpeg", *expected)


@pytest.mark.parametrize("data, reason", [
    (b"\xff\xd8\x00\xe0\x00\x10", "no marker at byte 2"),
    (b"\xff\xd8" + APP0 + b"\x12\x34\x56\x78", f"no marker at byte {2 + len(APP0)}"),
    (b"\xff\xd8\xff\xda\x00\x00", "no frame header (SOF) before the image data"),  # scan data first
    (b"\xff\xd8\xff\xd9\x00\x00", "no frame header (SOF) before the image data"),  # end of image
    (b"\xff\xd8" + _sof()[:8], "truncated before the frame header (SOF)"),
    (b"\xff\xd8" + APP0, "truncated before the frame header (SOF)"),
    (b"\xff\xd8\xff\xd0", "truncated before the frame header (SOF)"),
])
def test_jpeg_header_damage_is_named(data, reason):
    with pytest.raises(ImageError, match=re.escape(f"could not decode {len(data)} bytes as jpeg ({reason})") + "$"):
        compressed_size(data)
    with pytest.raises(ImageError, match=r"^could not decode 4 bytes: neither a PNG nor a JPEG stream$"):
        compressed_size(b"GIF8")


def test_raw_image_errors_give_the_numbers_and_the_choices():
    supported = ", ".join(SUPPORTED_ENCODINGS)
    assert supported.startswith("rgb8, bgr8, ") and supported.endswith(", yuv422_yuy2")
    for convert in (lambda: to_rgb(RawImage(1, 1, "abc", 3, b"xyz")),
                    lambda: from_rgb(np.zeros((1, 1, 3), np.uint8), "abc")):
        message = f"unsupported image encoding 'abc'; supported: {supported}"
        with pytest.raises(ImageError, match=re.escape(message) + "$"):
            convert()
    with pytest.raises(ImageError, match=r"^empty image: 0x2 \(rgb8\)$"):
        to_rgb(RawImage(2, 0, "rgb8", 0, b""))
    with pytest.raises(ImageError, match=r"^step 11 is smaller than width\*bytes_per_pixel = 2\*6 = 12 for rgb16$"):
        to_rgb(RawImage(1, 2, "rgb16", 11, bytes(11)))
    with pytest.raises(ImageError, match=r"^yuv422 needs an even width, got 3$"):
        from_rgb(np.zeros((2, 3, 3), np.uint8), "yuv422")
    assert from_rgb(np.zeros((1, 2, 3), np.uint8)).encoding == "rgb8"  # the default


def _png_claiming(width: int, height: int) -> bytes:
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return PNG_SIGNATURE + ihdr + png_chunk(b"IEND")


def test_header_pixel_limit_is_inclusive_and_zero_is_refused():
    limit = 8192 * 8192
    for width, height in ((0, 200), (8192, 8193)):
        data = _png_claiming(width, height)
        message = rf"^png header claims {width}x{height} pixels; the limit is {limit} pixels$"
        with pytest.raises(ImageError, match=message):
            decode_compressed("png", data)
    data = _png_claiming(8192, 8192)  # at the limit: handed to OpenCV, which finds no pixel data
    with pytest.raises(ImageError, match=rf"^could not decode {len(data)} bytes as png \(corrupt or truncated\)$"):
        decode_compressed("png", data)


def test_jpg_format_name_and_encoder_defaults(capfd):
    rgb = np.random.default_rng(3).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    fmt, data = encode_compressed(rgb)  # jpeg at quality 90 by default
    ok, reference = cv2.imencode(".jpg", rgb[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert fmt == "rgb8; jpeg compressed bgr8" and data == reference.tobytes()
    assert decode_compressed("jpg", data).shape == (16, 24, 3)  # "jpg" is a jpeg format name too
    capfd.readouterr()
    encode_compressed(rgb, "png")
    assert capfd.readouterr().err == ""  # no JPEG-only option handed to the PNG encoder
    with pytest.raises(ImageError, match=r"^OpenCV could not encode a \(1, 65536, 3\) image as jpeg$"):
        encode_compressed(np.zeros((1, 65536, 3), np.uint8))  # JPEG's limit is 65500 pixels a side


def test_header_fields_are_read_whole_and_the_ihdr_edge_is_exact():
    huge = PNG_SIGNATURE + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 2**24 + 1, 2**24 + 2, 8, 2, 0, 0, 0))
    assert compressed_size(huge + png_chunk(b"IEND")) == ("png", 2**24 + 1, 2**24 + 2)  # all four bytes count
    cut = huge[:24]  # signature, IHDR length and type, width, height: the size is there, the chunk is not
    with pytest.raises(ImageError, match=r"\(chunk b'IHDR' at byte 8 claims 13 bytes, 4 left\)$"):
        compressed_size(cut)
    app1 = _segment(0xE1, bytes(300))  # a segment longer than 255 bytes: both length bytes count
    assert compressed_size(b"\xff\xd8" + app1 + _sof()) == ("jpeg", 640, 480)
    stray_soi = b"\xff\xd8\xff\xd8\x00\x02"  # 0xD8 is not one of the length-less RSTn markers (0xD0-0xD7)
    assert compressed_size(stray_soi + _sof()) == ("jpeg", 640, 480)


def test_check_rgb_messages():
    with pytest.raises(ImageError, match=r"^expected a numpy array, got list$"):
        check_rgb([[1, 2, 3]])
    with pytest.raises(ImageError, match=r"^empty image of shape \(2, 0, 3\)$"):
        check_rgb(np.zeros((2, 0, 3), np.uint8))
