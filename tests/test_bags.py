"""rosbag2 round trips through real bags (mcap and sqlite3), written and read with rosbags."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from emotion_perception.evaluation import jobs
from emotion_perception.evaluation.bags import (COMPRESSED_IMAGE, IMAGE, BagError, BagReader, BagWriter,
                                                image_message, write_image_bag)
from emotion_perception.evaluation.video import VideoSource
from emotion_perception.types import Frame

STORAGES = ["mcap", "sqlite3"]
T0 = 1_700_000_000_123_456_789


def _frames(n=6, h=40, w=56):
    """Smooth, different frames (gradients shifted per frame): exact for raw, near for jpeg."""
    y, x = np.mgrid[0:h, 0:w]
    images = [np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 40 * i)], axis=2).astype(np.uint8) for i in range(n)]
    return [Frame(img, T0 + i * 66_666_667, "cam_optical") for i, img in enumerate(images)]


def _metadata(bag):
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "jpeg"])
def test_generated_frames_round_trip(tmp_path, storage, encoding):
    frames = _frames()
    bag = tmp_path / "bag"
    assert write_image_bag(frames, bag, None, encoding, storage) == len(frames)

    meta = _metadata(bag)
    assert meta["version"] == 8 and meta["storage_identifier"] == storage
    topic = "/camera/image_raw/compressed" if encoding == "jpeg" else "/camera/image_raw"
    with BagReader(bag) as reader:
        assert reader.topics == {topic: COMPRESSED_IMAGE if encoding == "jpeg" else IMAGE}
        back = list(reader.frames())
    assert len(back) == len(frames)
    for (frame, message), original in zip(back, frames):
        assert frame.stamp_ns == original.stamp_ns == message.log_time_ns
        assert frame.frame_id == "cam_optical"
        assert frame.image.shape == original.image.shape
        if encoding == "jpeg":  # lossy: close on average, not equal
            assert np.abs(frame.image.astype(int) - original.image.astype(int)).mean() < 4
        else:
            np.testing.assert_array_equal(frame.image, original.image)
    if encoding == "bgr8":
        with BagReader(bag) as reader:
            msg = reader.deserialize(next(reader.messages()))
        assert msg.encoding == "bgr8"
        np.testing.assert_array_equal(np.asarray(msg.data).reshape(40, 56, 3)[..., ::-1], frames[0].image)


def test_bag_version_9_on_request(tmp_path):
    write_image_bag(_frames(2), tmp_path / "v9", version=9)
    assert _metadata(tmp_path / "v9")["version"] == 9
    with pytest.raises(BagError, match="8 is read by Humble and Jazzy"):
        BagWriter(tmp_path / "v5", version=5)


@pytest.mark.parametrize("storage", STORAGES)
def test_video_file_round_trip(tmp_path, shared_data, storage):
    video = shared_data / "videos" / "single_face.mp4"
    bag = tmp_path / "rec"
    n = jobs.record(str(video), bag, "/head/image", "rgb8", storage, frame_id="head_cam", start_ns=T0, max_frames=12)
    assert n == 12
    decoded = [f for _, f in zip(range(12), VideoSource(video, start_ns=T0))]
    with BagReader(bag) as reader:
        assert reader.image_topics() == ["/head/image"]
        back = [f for f, _ in reader.frames("/head/image")]
    assert [f.stamp_ns - T0 for f in back] == [round(i * 1e9 / 30) for i in range(12)]  # 30 fps file
    for got, want in zip(back, decoded):
        assert got.frame_id == "head_cam"
        np.testing.assert_array_equal(got.image, want.image)


def test_writer_keeps_messages_written_before_an_error(tmp_path):
    def failing():
        yield from _frames(4)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_image_bag(failing(), tmp_path / "partial", storage="sqlite3")
    with BagReader(tmp_path / "partial") as reader:
        assert [f.stamp_ns for f, _ in reader.frames()] == [f.stamp_ns for f in _frames(4)]


@pytest.mark.parametrize("storage", STORAGES)
def test_truncated_bag_is_one_clear_error(tmp_path, storage):
    bag = tmp_path / "bag"
    write_image_bag(_frames(8, 120, 160), bag, storage=storage)
    data = next(p for p in bag.iterdir() if p.name != "metadata.yaml")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(BagError, match="truncated or corrupt"):
        with BagReader(bag) as reader:
            list(reader.frames())


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.92])
def test_a_sqlite3_bag_cut_anywhere_reads_its_frames_or_raises_bag_error(tmp_path, keep):
    """Found by benchmarks/fuzz.py: rosbags reads db3 through apsw, and apsw.CorruptError escaped."""
    bag = tmp_path / "bag"
    write_image_bag(_frames(6), bag, encoding="jpeg", storage="sqlite3")
    data = bag / "bag.db3"
    data.write_bytes(data.read_bytes()[: int(keep * data.stat().st_size)])
    try:
        with BagReader(bag) as reader:
            frames = [f for f, _ in reader.frames()]
    except BagError as err:
        assert "truncated or corrupt" in str(err)
    else:
        assert len(frames) <= 6


def test_bag_without_metadata_names_the_fix(tmp_path):
    bag = tmp_path / "bag"
    write_image_bag(_frames(2), bag)
    (bag / "metadata.yaml").unlink()
    with pytest.raises(BagError, match="metadata.yaml"):
        BagReader(bag)
    with BagReader(bag / "bag.mcap") as reader:  # the bare storage file still reads
        assert len(list(reader.frames())) == 2


def test_missing_topic_lists_image_topics(tmp_path):
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        for topic, enc in (("/front/image_raw", "rgb8"), ("/back/image_raw/compressed", "jpeg")):
            msgtype, msg = image_message(writer.store, _frames(1)[0].image, T0, "cam", enc)
            writer.write(topic, msgtype, T0, msg)
        writer.write("/chatter", "std_msgs/msg/String", T0, writer.store.types["std_msgs/msg/String"](data="hi"))
    with BagReader(bag) as reader:
        with pytest.raises(BagError) as err:
            reader.image_topic("/camera/image_raw")
        assert "/back/image_raw/compressed (CompressedImage)" in str(err.value)
        assert "/front/image_raw (Image)" in str(err.value)
        with pytest.raises(BagError, match="several image topics"):
            reader.image_topic(None)
        with pytest.raises(BagError, match="not an image"):
            reader.image_topic("/chatter")


def test_existing_output_is_never_overwritten(tmp_path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(BagError, match="already exists"):
        write_image_bag(_frames(1), tmp_path / "bag")


def test_bad_image_in_bag_names_topic_and_time(tmp_path):
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        _, msg = image_message(writer.store, _frames(1)[0].image, T0, "cam", "rgb8")
        msg.step = 7  # smaller than width * 3
        writer.write("/camera/image_raw", IMAGE, T0, msg)
    with BagReader(bag) as reader:
        with pytest.raises(BagError, match=f"bad image on /camera/image_raw at {T0} ns"):
            list(reader.frames())
    shutil.rmtree(bag)
