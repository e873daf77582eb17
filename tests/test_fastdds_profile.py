"""config/fastdds_large_images.xml: the Fast DDS profile head.launch.py gives its nodes (issue 24).
Its effect is measured by benchmarks/camera_path.py (docs/ros.md); here: it is the profile that
was measured, by Fast DDS's XML schema names."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from conftest import PACKAGE_DIR

NS = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
PROFILE = PACKAGE_DIR / "config" / "fastdds_large_images.xml"
IMAGE_1280x720_RGB8 = 1280 * 720 * 3


def test_default_participant_uses_only_its_own_transports():
    root = ET.parse(PROFILE).getroot()
    (participant,) = root.findall("f:profiles/f:participant", NS)
    assert participant.get("is_default_profile") == "true"  # rclpy's participants take it without naming it
    rtps = participant.find("f:rtps", NS)
    assert rtps.findtext("f:useBuiltinTransports", namespaces=NS) == "false"
    used = [t.text for t in rtps.findall("f:userTransports/f:transport_id", NS)]
    declared = {d.findtext("f:transport_id", namespaces=NS): d
                for d in root.findall("f:profiles/f:transport_descriptors/f:transport_descriptor", NS)}
    assert set(used) == set(declared)
    assert sorted(d.findtext("f:type", namespaces=NS) for d in declared.values()) == ["SHM", "UDPv4"]


def test_shared_memory_segment_holds_several_720p_images():
    """The sender's segment carries every image it has in flight: Fast DDS's default (512 KiB)
    holds no 640x480 rgb8 image, and 80 % of them were lost."""
    root = ET.parse(PROFILE).getroot()
    (shm,) = [d for d in root.iter(f"{{{NS['f']}}}transport_descriptor") if d.findtext("f:type", namespaces=NS) == "SHM"]
    assert int(shm.findtext("f:segment_size", namespaces=NS)) >= 5 * IMAGE_1280x720_RGB8
