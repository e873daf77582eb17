"""The engine's settings: one table, each setting declared once (name, type, default, range or
choices, unit, description).

Every door is generated from it or checked against it: ``EngineConfig`` (engine/core.py) is made
from ``ENGINE_SETTINGS``; ``pipeline.create_engine`` takes ``SETTINGS`` by name; the perception
node declares them as typed, ranged parameters (ros/params.py); ``config/head.yaml`` and
``head.launch.py``'s arguments are checked against them (tests/test_settings.py); the CLI's
``--set`` lists and validates them. Adding a setting is one line here (and the code that uses it).

"Not set" has one spelling: no value (``None``). Then ``unset`` says what applies (the profile's
value, the device's choice); on ROS it is a parameter declared without a value, in a YAML file
or on the command line an absent key, in a launch file an empty argument. ``EngineConfig``,
built without the pipeline, falls back to ``engine_default``.
"""
from __future__ import annotations

from .parameters import Param

# faces/detectors.DETECTORS' names (a test checks); named here so that this table, which the launch
# file reads, imports nothing heavy
DETECTOR_NAMES = ("opencv", "blazeface", "blazeface_back", "sfd", "mtcnn", "dlib_hog", "dlib_cnn")

# create_engine's own arguments: which model, where, with which detector
PIPELINE_SETTINGS: tuple[Param, ...] = (
    Param("profile", "auto", "Model profile (a models/*.yaml name), or auto: the best one whose weights "
          "are present for the device", at_configure=True),
    Param("weights_dir", None, "Directory with the model weights", type="str",
          unset="$EMOTION_PERCEPTION_WEIGHTS, else ~/.cache/emotion_perception/weights", at_configure=True),
    Param("detector", None, "Face detector backend (faces/detectors.py)", type="str", choices=DETECTOR_NAMES,
          unset="the profile's detector, then its fallbacks", at_configure=True),
    Param("min_face_score", None, "Ignore face detections scoring below this (detector confidence)",
          type="float", low=0.0, high=1.0, unset="the detector's own threshold (0.5; MTCNN 0.7)",
          at_configure=True),
    Param("identity", True, "Give each face a person id that survives absences (dlib face embeddings at "
          "track start and searches, docs/persons.md); false, or without dlib: face ids only", at_configure=True),
)

# EngineConfig's fields, in its order
ENGINE_SETTINGS: tuple[Param, ...] = (
    Param("window", None, "Frames per face the temporal head looks at", type="int", low=1, high=128,
          unit="frames", unset="the profile's window", engine_default=16, at_configure=True),
    Param("scene_interval", None, "Re-encode the whole scene every N frames of a camera", type="int",
          low=1, high=300, unit="frames", unset="the profile's scene_interval", engine_default=4,
          at_configure=True),
    Param("face_margin", None, "Context added around each face box before cropping, as a fraction of "
          "its side", type="float", low=0.0, high=1.0, unit="box sides", unset="the profile's crop.margin",
          engine_default=0.25, at_configure=True),
    Param("face_square", None, "Crop a square of the face box's longer side (false: the box's own "
          "shape)", type="bool", unset="the profile's crop.square", engine_default=True, at_configure=True),
    Param("face_shift", None, "Move the crop centre down by this fraction of the box height", type="float",
          low=-1.0, high=1.0, unit="box heights", unset="the profile's crop.shift", engine_default=0.0,
          at_configure=True),
    Param("face_align", None, "Turn each crop so that the eyes are level (roll from MTCNN's O-Net "
          "landmarks, faces/align.py)", type="bool", unset="the profile's crop.align", engine_default=False,
          at_configure=True),
    Param("face_align_min_deg", None, "Turn a crop only when the head is tilted at least this much",
          type="float", low=0.0, high=90.0, unit="degrees", unset="the profile's crop.align_min_deg",
          engine_default=0.0, at_configure=True),
    Param("track_patience_s", 1.0, "Camera time a face may go undetected and keep its id (and window)",
          low=0.0, high=60.0, unit="s", at_configure=True),
    Param("track_memory_s", 3.0, "After that, a face back where it was within this time gets its id back",
          low=0.0, high=600.0, unit="s", at_configure=True),
    Param("min_hits", 2, "Publish a face only once it was detected in this many frames (2-3 hide "
          "one-frame detector false positives at the cost of that many frames' delay)", low=1, high=30,
          unit="frames", at_configure=True),
    Param("iou_threshold", 0.3, "Least overlap (IoU) of a detection with a track's predicted box to "
          "continue that track", low=0.0, high=1.0, at_configure=True),
    Param("device", "auto", "Inference device: auto, cpu, cuda or cuda:N", at_configure=True),
    Param("precision", None, "Autocast precision of the encoders", type="str", choices=("fp32", "fp16", "bf16"),
          unset="fp16 on CUDA, fp32 on CPU", engine_default="fp32", at_configure=True),
    Param("cuda_streams", True, "Separate copy, face and scene CUDA streams (no effect on CPU)",
          at_configure=True),
    Param("max_faces", 8, "At most this many faces per frame (highest detector scores first)", low=1,
          high=64, unit="faces", at_configure=True),
    Param("smoothing", "ema", "Per-face smoothing of the published probabilities", choices=("none", "ema",
          "hysteresis"), at_configure=True),
    Param("smoothing_time_s", 1.0, "ema time constant (the class follows a change after ~0.7 of it); "
          "must be > 0 with ema", low=0.0, high=60.0, unit="s", at_configure=True),
    Param("smoothing_margin", 0.15, "hysteresis: the lead another class needs to replace the held one",
          low=0.0, high=1.0, unit="probability", at_configure=True),
    Param("detect_max_side", 0, "Detect on a copy scaled down to this longer side, boxes scaled back "
          "(0: the full frame)", low=0, high=8192, unit="px", at_configure=True),
    Param("detect_interval_s", None, "Search the whole frame for faces at most this often (camera time; at "
          "once when a tracked face is lost); in between, tracked faces are followed by a re-detector, "
          "far cheaper on CPU. 0: search every frame", type="float", low=0.0, high=60.0, unit="s",
          unset="the profile's detector.interval_s (lite-fer2013: 0.5)", engine_default=0.0,
          at_configure=True),
    Param("threads", None, "CPU threads of torch and OpenCV in this process (0: leave them as they are); "
          "fewer threads hold up better when other programs share the cores", type="int", low=0, high=256,
          unit="threads", unset="the profile's default for the device (lite-fer2013 on CPU: 1)",
          engine_default=0, at_configure=True),
    Param("temperature", None, "Class logits are divided by this before the softmax, so that a "
          "probability of 0.6 is right about 60 % of the time (fitted by `emotion-perception calibrate`)",
          type="float", low=0.01, high=100.0, unset="the profile's calibration.temperature",
          engine_default=1.0, at_configure=True),
)

SETTINGS: tuple[Param, ...] = PIPELINE_SETTINGS + ENGINE_SETTINGS
SETTINGS_BY_NAME: dict[str, Param] = {p.name: p for p in SETTINGS}


def settings_help() -> str:
    """One line per setting: name, type, range or choices, unit, default or what "not set" means."""
    return "\n".join(p.summary() for p in SETTINGS)


def parse_settings(pairs: list[str], table: tuple[Param, ...] = ENGINE_SETTINGS) -> dict:
    """``["face_margin=0.1", ...]`` -> {name: value}, each parsed and checked by its table entry."""
    by_name = {p.name: p for p in table}
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or name not in by_name:
            raise ValueError(f"{pair!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(by_name))}")
        values[name] = by_name[name].parse(text)
    return values
