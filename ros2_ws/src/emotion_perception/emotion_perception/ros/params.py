"""The perception node's parameters: one ROS-free table, the single source of truth.

The node declares every parameter from this table (with its description and range), and
``config/head.yaml`` repeats the defaults for users to edit; a CI test checks they agree.
"""
from __future__ import annotations

from ..parameters import Param, Value

PARAMETERS: tuple[Param, ...] = (
    # Model (read at configure; change them, then cleanup + configure).
    Param("profile", "auto", "Model profile (models/*.yaml name), or 'auto' to pick the best one "
          "whose weights are present for the device", at_configure=True),
    Param("device", "auto", "Inference device: auto, cpu, cuda, cuda:N", at_configure=True),
    Param("precision", "", "fp32, fp16 or bf16; empty = the profile's choice for the device",
          choices=("", "fp32", "fp16", "bf16"), at_configure=True),
    Param("weights_dir", "", "Directory with model weights; empty = the package default "
          "($EMOTION_PERCEPTION_WEIGHTS, else ~/.cache/emotion_perception/weights)", at_configure=True),
    Param("detector", "", "Face detector (opencv, blazeface, blazeface_back, sfd, mtcnn, dlib_hog, dlib_cnn); empty = the "
          "profile's", at_configure=True),
    Param("window", 0, "Frames per face the temporal head looks at; 0 = the profile's",
          low=0, high=128, at_configure=True),
    Param("scene_interval", 0, "Re-encode the whole scene every N frames; 0 = the profile's",
          low=0, high=300, at_configure=True),
    Param("face_margin", -1.0, "Margin added around each face box before cropping, as a fraction "
          "of the box size; negative = the profile's crop (models/*.yaml crop.margin)", low=-1.0, high=1.0,
          at_configure=True),
    Param("min_face_score", 0.5, "Ignore face detections scoring below this (detector confidence)",
          low=0.0, high=1.0, at_configure=True),
    Param("min_track_hits", 0, "Publish a face only once it was detected in this many frames; 2-3 "
          "hides one-frame detector false positives at the cost of that many frames' delay; 0 = the "
          "engine default", low=0, high=30, at_configure=True),
    Param("detect_interval_s", -1.0, "Search the whole frame for faces at most this often (camera "
          "seconds; at once when a tracked face is lost); in between, tracked faces are followed "
          "by MTCNN's re-detection, far cheaper on CPU. 0 = search every frame; negative = the "
          "profile's (lite-fer2013: 0.5)", low=-1.0, high=60.0, at_configure=True),
    Param("max_faces", 8, "At most this many faces per frame (highest detector scores first)",
          low=1, high=64, at_configure=True),
    Param("threads", 0, "CPU threads for torch and OpenCV in this process; 0 = the profile's default "
          "for the device (lite-fer2013 on CPU: 1). Fewer threads hold up better when other nodes "
          "share the cores", low=0, high=256, at_configure=True),
    # Persons (docs/persons.md): re-identification across absences, and what of it is kept.
    Param("identity", True, "Give each face a person id that survives absences (dlib face embeddings at "
          "track start and searches); off, or without dlib, consumers key by face id", at_configure=True),
    Param("gallery_path", "", "Keep the persons' face embeddings (never images) in this file across "
          "restarts; empty = memory only, forgotten when the node is cleaned up or exits", at_configure=True),
    Param("gallery_retention_s", 86400.0, "With gallery_path: erase a person unseen for this long "
          "(seconds)", low=1.0, high=31536000.0, at_configure=True),
    # Input.
    Param("image_topics", ["image"], "Camera topics, one subscription each (remap 'image' for one "
          "camera); frames of all cameras are batched through one engine", at_configure=True),
    Param("image_transport", "raw", "raw: sensor_msgs/Image on <topic>; compressed: "
          "sensor_msgs/CompressedImage on <topic>/compressed", choices=("raw", "compressed"),
          at_configure=True),
    Param("reliable_qos", False, "Subscribe with reliable QoS instead of sensor-data (best effort); "
          "a reliable subscription gets nothing from a best-effort camera", at_configure=True),
    # Output.
    Param("publish_debug_image", True, "Offer 'debug_image' (boxes, labels, scene polarity); drawn "
          "only while someone subscribes", at_configure=True),
    Param("publish_hri", True, "Also publish ROS4HRI (REP-155) hri_msgs/Expression and tracked ids "
          "under /humans/faces when hri_msgs is installed", at_configure=True),
    Param("error_log_period_s", 5.0, "At most one log line per this many seconds for repeated "
          "per-frame errors (corrupt images, inference failures)", low=0.1, high=3600.0,
          at_configure=True),
    # Diagnostics (/diagnostics at 2 Hz).
    Param("diag_min_rate_warn_hz", 2.0, "Warn when fewer frames per second are processed while "
          "images arrive", low=0.0, high=1000.0),
    Param("diag_min_rate_error_hz", 0.5, "Error below this processing rate while images arrive",
          low=0.0, high=1000.0),
    Param("diag_latency_warn_ms", 500.0, "Warn when the p95 receive-to-publish latency exceeds this",
          low=0.0, high=60000.0),
    Param("diag_latency_error_ms", 2000.0, "Error when the p95 latency exceeds this",
          low=0.0, high=60000.0),
    Param("diag_drop_warn_ratio", 0.8, "Warn when this fraction of received frames was dropped "
          "(stale frames replaced by newer ones, or bad images)", low=0.0, high=1.0),
    Param("diag_drop_error_ratio", 0.98, "Error when this fraction of received frames was dropped",
          low=0.0, high=1.0),
    Param("diag_stale_s", 5.0, "Report STALE when no image arrived for this long while active",
          low=0.1, high=3600.0),
    Param("diag_camera_timeout_s", 1.0, "Warn, naming the camera, when one camera sent no image for "
          "this long (reported within this plus 0.5 s); raise it for cameras slower than ~3 Hz",
          low=0.1, high=3600.0),
)

BY_NAME: dict[str, Param] = {p.name: p for p in PARAMETERS}
DEFAULTS: dict[str, Value] = {p.name: p.default for p in PARAMETERS}


def validate(values: dict[str, Value]) -> dict[str, Value]:
    """Check every known value (unknown names are an error); return them normalised."""
    unknown = set(values) - set(BY_NAME)
    if unknown:
        raise ValueError(f"unknown parameters: {', '.join(sorted(unknown))}")
    out = {name: BY_NAME[name].check(v) for name, v in values.items()}
    if not out.get("image_topics", ["image"]):
        raise ValueError("image_topics must name at least one topic")
    return out


def engine_options(values: dict[str, Value]) -> dict:
    """Keyword arguments for ``pipeline.create_engine`` from validated parameter values.

    Empty strings and zeros mean "the profile's value", so they are left out; the rest beyond
    profile/device/precision/detector/weights_dir are ``EngineConfig`` fields.
    """
    opts: dict = {"profile": values["profile"], "device": values["device"]}
    for key in ("precision", "detector", "weights_dir"):
        if values[key]:
            opts[key] = values[key]
    for key in ("window", "scene_interval", "threads"):
        if values[key]:
            opts[key] = values[key]
    for key in ("max_faces", "min_face_score"):
        opts[key] = values[key]
    if values["face_margin"] >= 0:
        opts["face_margin"] = values["face_margin"]
    if values["detect_interval_s"] >= 0:
        opts["detect_interval_s"] = values["detect_interval_s"]
    if values["min_track_hits"]:
        opts["min_hits"] = values["min_track_hits"]
    opts["identity"] = values["identity"]
    return opts
