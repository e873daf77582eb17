"""Shared test fixtures: the real data in ../shared/data and the repository paths."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "ros2_ws" / "src" / "emotion_perception"
MSGS_DIR = REPO / "ros2_ws" / "src" / "emotion_msgs"
SHARED_DATA = Path(os.environ.get("EMOTION_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real faces, videos, BlazeFace weights, tiny GGUF LLMs), or skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (set EMOTION_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def astronaut():
    """512x512 RGB photo of one smiling face (scikit-image's bundled copy; needs no shared data)."""
    from skimage import data

    return data.astronaut()
