"""Faces: detect them in a frame, give them stable ids over time, crop them for the encoders."""
from .crops import crop_face
from .base import FaceDetector
from .detectors import DETECTORS, create_detector
from .tracker import FaceTracker, Track, TrackerUpdate

__all__ = [
    "DETECTORS",
    "FaceDetector",
    "FaceTracker",
    "Track",
    "TrackerUpdate",
    "create_detector",
    "crop_face",
]
