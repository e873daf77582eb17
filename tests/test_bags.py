"""rosbag2 round trips through real bags (mcap and sqlite3), written and read with rosbags."""
from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
import struct

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Writer

from emotion_perception.evaluation import jobs
from emotion_perception.evaluation.bags import (COMPRESSED_IMAGE, FLOAT64, IMAGE, STRING, BagError, BagReader,
                                                BagWriter, default_image_topic, image_message, image_stamps,
                                                latency_topic, write_image_bag)
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


def test_a_sqlite3_bag_with_one_byte_of_its_schema_overwritten_is_a_bag_error(tmp_path):
    """Found by tests/test_fuzz.py (one overwritten byte early in a db3). `schema_version INTEGER
    PRIMARY KEY` is an alias of the rowid, which sqlite stores as NULL in the row itself; with one
    letter of that declaration changed the column is no longer an alias and reads NULL, and
    rosbags' `schema >= 4` raised TypeError out of BagReader."""
    bag = tmp_path / "bag"
    write_image_bag(_frames(2), bag, storage="sqlite3")
    with contextlib.closing(sqlite3.connect(bag / "bag.db3")) as db, db:
        db.execute("PRAGMA writable_schema = ON")
        db.execute("UPDATE sqlite_master SET sql = replace(sql, 'PRIMARY KEY', 'PRIMARX KEY') WHERE name = 'schema'")
    with contextlib.closing(sqlite3.connect(bag / "bag.db3")) as db:
        assert db.execute("SELECT schema_version FROM schema").fetchall() == [(None,)]
    with pytest.raises(BagError, match=r"^bag .*bag is truncated or corrupt \(.*\): the recording was probably "):
        BagReader(bag)


@pytest.mark.parametrize("claimed", [2**62, 2**64 - 1])
def test_an_mcap_chunk_index_claiming_an_impossible_size_is_a_bag_error(tmp_path, claimed):
    """Found by fuzzing at 20,000 cases: an overwritten size field made rosbags read or seek that
    many bytes, and MemoryError (2**62) or OverflowError (past 2**63) escaped BagReader. The field
    is found by the mcap spec's layout of a Chunk Index record (opcode 0x08): four u64, a map of
    u32 byte length, a u64, a string of u32 length, then compressed_size u64."""
    bag = tmp_path / "bag"
    write_image_bag(_frames(3), bag)
    data = bytearray((bag / "bag.mcap").read_bytes())
    at, sizes = 8, []  # top-level records after the 8-byte magic: opcode u8, length u64, content
    while at < len(data) - 8:
        opcode, length = data[at], struct.unpack_from("<Q", data, at + 1)[0]
        if opcode == 0x08:
            field = at + 9 + 32
            field += 4 + struct.unpack_from("<I", data, field)[0] + 8
            field += 4 + struct.unpack_from("<I", data, field)[0]
            sizes.append(struct.unpack_from("<Q", data, field)[0])
            data[field:field + 8] = struct.pack("<Q", claimed)
        at += 9 + length
    assert len(sizes) == 1 and 0 < sizes[0] < len(data)  # one chunk, its true compressed size
    (bag / "bag.mcap").write_bytes(bytes(data))
    with pytest.raises(BagError, match=rf"^bag {bag} is truncated or corrupt \(a record claims an impossible size "
                                       r"\((MemoryError|OverflowError)\)\) after 0 messages: the recording"):
        with BagReader(bag) as reader:
            list(reader.messages())


def test_bag_without_metadata_names_the_fix(tmp_path):
    bag = tmp_path / "bag"
    write_image_bag(_frames(2), bag)
    (bag / "metadata.yaml").unlink()
    with pytest.raises(BagError, match="needs its metadata.yaml"):
        BagReader(bag)
    with BagReader(bag / "bag.mcap") as reader:  # the bare storage file still reads
        assert len(list(reader.frames())) == 2


def _two_cameras(bag, chatter=False):
    """A bag with an Image and a CompressedImage topic (and a String topic if ``chatter``)."""
    with BagWriter(bag) as writer:
        for topic, enc in (("/front/image_raw", "rgb8"), ("/back/image_raw/compressed", "jpeg")):
            msgtype, msg = image_message(writer.store, _frames(1)[0].image, T0, "cam", enc)
            writer.write(topic, msgtype, T0, msg)
        if chatter:
            writer.write("/chatter", STRING, T0, writer.store.types[STRING](data="hi"))


def test_missing_topic_lists_image_topics(tmp_path):
    bag = tmp_path / "bag"
    _two_cameras(bag, chatter=True)
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


def _string_bag(path, times_ns, topic="/chatter", **writer_options):
    with BagWriter(path, **writer_options) as writer:
        for t in times_ns:
            writer.write(topic, STRING, t, writer.store.types[STRING](data="hi"))
        return dict(writer.counts)


def test_writer_counts_messages_per_topic_and_names_itself(tmp_path):
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        for t in (T0, T0 + 1, T0 + 2):
            writer.write("/a", STRING, t, writer.store.types[STRING](data="x"))
        writer.write("/b", FLOAT64, T0, writer.store.types[FLOAT64](data=1.0))
        assert writer.counts == {"/a": 3, "/b": 1}
        with pytest.raises(BagError, match=r"^topic /a already holds std_msgs/msg/String, cannot also write "
                                           r"std_msgs/msg/Float64$"):
            writer.write("/a", FLOAT64, T0, writer.store.types[FLOAT64](data=1.0))
    assert _metadata(bag)["custom_data"] == {"writer": "emotion_perception"}


def test_writer_refuses_bad_options_with_the_choices(tmp_path):
    with pytest.raises(BagError, match=r"^unknown bag storage 'zip'; expected one of mcap, sqlite3$"):
        BagWriter(tmp_path / "a", storage="zip")
    with pytest.raises(BagError, match=r"expected one of \(8, 9\) \(8 is read by Humble and Jazzy, 9 by Jazzy only\)$"):
        BagWriter(tmp_path / "a", version=7)
    (tmp_path / "file").write_text("")
    with pytest.raises(BagError, match=rf"^cannot create bag {tmp_path}/file/bag: "):
        BagWriter(tmp_path / "file" / "bag")


def test_latency_topic_sits_under_the_results_topic():
    assert latency_topic("/emotions") == latency_topic("/emotions/") == "/emotions/latency_ms"
    assert latency_topic("/faces_X") == "/faces_X/latency_ms"  # only slashes are trimmed


def test_image_stamps_are_header_stamps_in_recorded_order(tmp_path):
    bag = tmp_path / "bag"
    stamps = [T0 + 5, T0 - 1_000_000_007, T0 + 2_000_000_001]  # recorded out of time order
    with BagWriter(bag) as writer:
        rgb = _frames(1)[0].image
        for log_ns, stamp in enumerate(stamps, start=T0):
            writer.write("/front/image_raw", IMAGE, log_ns, image_message(writer.store, rgb, stamp, "cam")[1])
            writer.write("/back/image_raw", IMAGE, log_ns, image_message(writer.store, rgb, 7, "cam")[1])
    assert image_stamps(bag, "/front/image_raw") == stamps


def test_image_message_encodings(tmp_path):
    store = BagWriter(tmp_path / "bag").store
    rgb = _frames(1)[0].image
    msgtype, msg = image_message(store, rgb, T0, "cam")  # rgb8 by default
    assert msgtype == IMAGE and msg.encoding == "rgb8"
    msgtype, msg = image_message(store, rgb, T0, "cam", "png")
    assert msgtype == COMPRESSED_IMAGE and msg.format == "rgb8; png compressed bgr8"
    assert bytes(msg.data[:8]) == b"\x89PNG\r\n\x1a\n"  # the PNG signature
    assert default_image_topic("png") == default_image_topic("jpeg") == "/camera/image_raw/compressed"
    assert default_image_topic("bgr8") == "/camera/image_raw"


def test_frame_rate_counts_intervals_over_the_span(tmp_path):
    _string_bag(tmp_path / "four", [T0, T0 + 100_000_000, T0 + 200_000_000, T0 + 300_000_000])
    _string_bag(tmp_path / "one", [T0])
    with BagReader(tmp_path / "four") as reader:
        assert reader.frame_rate("/chatter") == pytest.approx(10.0, rel=1e-6)  # 3 intervals in 0.3 s
        assert reader.frame_rate("/absent") is None
    with BagReader(tmp_path / "one") as reader:
        assert reader.frame_rate("/chatter") is None
    _string_bag(tmp_path / "two", [T0, T0 + 2_000_000_000])
    with BagReader(tmp_path / "two") as reader:
        assert reader.frame_rate("/chatter") == pytest.approx(0.5, rel=1e-6)  # 1 interval over 2 s


def test_image_topic_errors_list_the_bag(tmp_path):
    _string_bag(tmp_path / "text", [T0])
    with BagWriter(tmp_path / "text2") as writer:
        for topic in ("/z", "/chatter"):
            writer.write(topic, STRING, T0, writer.store.types[STRING](data="hi"))
    with BagReader(tmp_path / "text2") as reader:
        with pytest.raises(BagError, match=rf"^bag {tmp_path}/text2 has no Image or CompressedImage topic "
                                           r"\(its topics: /chatter, /z\)$"):
            reader.image_topic(None)
        with pytest.raises(BagError, match=r"has no topic /cam; its image topics: none$"):
            reader.image_topic("/cam")
    with Writer(tmp_path / "empty", version=8) as writer:
        pass
    with BagReader(tmp_path / "empty") as reader:
        with pytest.raises(BagError, match=r"\(its topics: none\)$"):
            reader.image_topic(None)


def test_frames_of_a_named_topic_among_several(tmp_path):
    bag = tmp_path / "bag"
    _two_cameras(bag)
    with BagReader(bag) as reader:
        assert "/back/image_raw/compressed (CompressedImage), /front/image_raw (Image)" in str(
            pytest.raises(BagError, reader.image_topic, "/x").value)
        [(frame, message)] = list(reader.frames("/front/image_raw"))
    assert frame.source == message.topic == "/front/image_raw"


def test_write_image_bag_frame_id_override(tmp_path):
    write_image_bag(_frames(2), tmp_path / "bag", frame_id="head_cam")
    with BagReader(tmp_path / "bag") as reader:
        assert [f.frame_id for f, _ in reader.frames()] == ["head_cam", "head_cam"]


def test_bad_cdr_names_type_topic_and_time(tmp_path):
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        writer.write_raw("/chatter", STRING, T0, b"\x00\x01")
    with BagReader(bag) as reader:
        with pytest.raises(BagError, match=rf"^bad std_msgs/msg/String message on /chatter at {T0} ns in {bag}: "):
            reader.deserialize(next(reader.messages()))


@pytest.mark.parametrize("storage", STORAGES)
def test_missing_metadata_hint_and_folder_checks(tmp_path, storage):
    bag = tmp_path / "bag"
    write_image_bag(_frames(2), bag, storage=storage)
    (bag / "metadata.yaml").unlink()
    with pytest.raises(BagError) as err:
        BagReader(bag)
    assert re.fullmatch(rf"bag {bag} is truncated or corrupt \(.*\): a bag directory needs its metadata\.yaml "
                        r"\(`ros2 bag reindex` rebuilds it\), or pass the \.mcap/\.db3 file", str(err.value))


def test_folders_that_are_no_bag(tmp_path):
    with pytest.raises(BagError, match=rf"^no bag at {tmp_path}/absent$"):
        BagReader(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match=rf"^{tmp_path}/empty is an empty folder, not a rosbag2 bag$"):
        BagReader(tmp_path / "empty")
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "0001.png").write_bytes(b"")
    with pytest.raises(BagError, match=r"pictures is not a rosbag2 folder: it has no metadata.yaml and no .mcap/.db3 "
                                       r"file \(record one with `emotion-perception record` or `ros2 bag record`\)$"):
        BagReader(tmp_path / "pictures")
    # metadata.yaml present but its storage file gone: a damaged bag, not "no bag"
    write_image_bag(_frames(1), tmp_path / "gone")
    (tmp_path / "gone" / "gone.mcap").unlink()
    with pytest.raises(BagError, match=rf"^bag {tmp_path}/gone is truncated or corrupt"):
        BagReader(tmp_path / "gone")


def test_a_record_damaged_mid_bag_keeps_the_messages_before_it(tmp_path):
    """A message record whose length field is garbage (mcap spec: opcode 0x05, uint64 length, then
    channel id u16, sequence u32, log time u64, publish time u64): every message of the chunks
    before it still reads, exactly those (its own chunk is lost with it), then one BagError."""
    bag = tmp_path / "bag"
    frames = _frames(30, 240, 320)  # ~230 kB each: several 1 MB chunks
    write_image_bag(frames, bag)
    data = bytearray((bag / "bag.mcap").read_bytes())
    times = struct.pack("<QQ", frames[27].stamp_ns, frames[27].stamp_ns)  # log time == publish time
    record = data.find(times) - 15
    assert data[record] == 0x05
    # walk the top-level records (8-byte magic, then opcode u8 + length u64 + content) to the
    # chunk holding that message: every message in the chunks before it must still be read
    chunk = 8
    while chunk + 9 + struct.unpack_from("<Q", data, chunk + 1)[0] <= record:
        chunk += 9 + struct.unpack_from("<Q", data, chunk + 1)[0]
    assert data[chunk] == 0x06  # a chunk record
    intact = sum(0 <= data.find(struct.pack("<QQ", f.stamp_ns, f.stamp_ns)) < chunk for f in frames)
    data[record + 1:record + 9] = struct.pack("<Q", 2**40)
    (bag / "bag.mcap").write_bytes(bytes(data))
    read = []
    with pytest.raises(BagError) as err:
        with BagReader(bag) as reader:
            for message in reader.messages():
                read.append(message.log_time_ns)
    assert 1 < intact < 27  # the damage sits past the first chunk, and ends the bag early
    assert read == [f.stamp_ns for f in frames[:intact]]
    assert re.fullmatch(rf"bag {bag} is truncated or corrupt \(.*Truncated record.*\) after {len(read)} messages: the "
                        r"recording was probably cut off; `mcap recover` \(mcap\) or sqlite3's \.recover \(db3\) may "
                        r"salvage it", str(err.value))
