"""Generated bad input (tests/fuzz_cases.py): each reader converts or raises its documented error.

A few examples per target keep CI fast; benchmarks/fuzz.py runs 10,000 and counts them.
"""
from __future__ import annotations

import pytest
from hypothesis import given

import fuzz_cases as F


@F.fuzz_settings(150)
@given(F.raw_images())
def test_raw_images_convert_or_raise_image_error(img):
    F.check_raw_image(img)


@F.fuzz_settings(150)
@given(F.compressed_images())
def test_compressed_images_decode_or_raise_image_error(case):
    F.check_compressed(case)


def test_label_files_load_or_raise_labels_error(tmp_path):
    @F.fuzz_settings(150)
    @given(F.label_files())
    def run(content):
        F.check_label_file(content, tmp_path)

    run()


@pytest.fixture(scope="module")
def good_bags(tmp_path_factory):
    return F.make_bags(tmp_path_factory.mktemp("bags"))


def test_damaged_bags_read_or_raise_bag_error(good_bags):
    @F.fuzz_settings(40)
    @given(F.bag_damage())
    def run(case):
        F.check_bag(case, good_bags)

    run()


def test_the_oracle_knows_a_valid_image_from_an_invalid_one():
    """The fuzz checks are only as good as their oracle: pin it on hand-made cases."""
    ok = F.RawImage(2, 4, "yuv422", 8, bytes(16))
    assert F.raw_image_is_valid(ok) and F.check_raw_image(ok) == F.CONVERTED
    for bad in (F.RawImage(2, 3, "yuv422", 6, bytes(12)),  # odd width for 4:2:2
                F.RawImage(2, 4, "rgb16", 23, bytes(46)),  # step below 4 * 6 bytes
                F.RawImage(2, 4, "mono8", 4, bytes(7)),  # one byte short
                F.RawImage(2, 4, "RGB8", 12, bytes(24))):  # encodings are case-sensitive
        assert not F.raw_image_is_valid(bad) and F.check_raw_image(bad) == F.REFUSED
