"""The perception node's parameters: every engine setting (settings.SETTINGS, typed and ranged
there) and the node's own (input, output, diagnostics), as one ROS-free table.

The node declares every parameter from this table through ros/declare.py; ``config/head.yaml``
and head.launch.py's arguments are checked against it (tests/test_settings.py). An engine
setting that is not set (declared without a value, left out of head.yaml) takes the profile's
value; see settings.py.
"""
from __future__ import annotations

from ..parameters import Param, Value
from ..settings import SETTINGS

NODE_PARAMETERS: tuple[Param, ...] = (
    # Persons (docs/persons.md): what of re-identification is kept, and where.
    Param("gallery_path", None, "Keep the persons' face embeddings (never images) in this file across "
          "restarts", type="str", unset="memory only, forgotten at cleanup or exit", at_configure=True),
    Param("gallery_retention_s", 86400.0, "With gallery_path: erase a person unseen for this long",
          low=1.0, high=31536000.0, unit="s", at_configure=True),
    Param("gallery_threshold", 0.5, "Largest face-embedding distance at which a face is taken for a "
          "person seen before: lower splits one person into several ids more often, higher risks two "
          "people sharing one (docs/persons.md has the measured distances)", low=0.2, high=0.6,
          unit="distance", at_configure=True),
    # Input.
    Param("image_topics", ["image"], "Camera topics, one subscription each (remap 'image' for one "
          "camera); frames of all cameras are batched through one engine", at_configure=True),
    Param("image_transport", "raw", "raw: sensor_msgs/Image on <topic>; compressed: "
          "sensor_msgs/CompressedImage on <topic>/compressed", choices=("raw", "compressed"),
          at_configure=True),
    Param("image_qos", "auto", "Reliability of the image subscriptions: auto follows the publishers "
          "(reliable when every publisher of the topic is reliable, so lost fragments of large "
          "images are resent; best effort otherwise, and while there is none), re-checked every "
          "second; reliable gets nothing from a best-effort camera; best_effort (sensor data) "
          "receives from any camera but loses large raw images in transport",
          choices=("auto", "reliable", "best_effort"), at_configure=True),
    # Lifecycle.
    Param("autostart", False, "Configure and activate by itself right after start (as Nav2's "
          "lifecycle manager would); false: wait for lifecycle transitions. Read once, at start"),
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
    Param("diag_input_loss_warn_ratio", 0.1, "Warn when this fraction of the camera's recent frames "
          "never reached the node (estimated from gaps between the image stamps: transport loss)",
          low=0.0, high=1.0),
    Param("diag_input_loss_error_ratio", 0.5, "Error when this fraction of the camera's recent frames "
          "never reached the node", low=0.0, high=1.0),
)

PARAMETERS: tuple[Param, ...] = SETTINGS + NODE_PARAMETERS
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
    """Keyword arguments for ``pipeline.create_engine``: the engine settings that are set."""
    return {p.name: values[p.name] for p in SETTINGS if values.get(p.name) is not None}
