"""Errors shared across the core. Kept free of heavy imports so that raising or catching them
never pulls in torch or open_clip."""
from __future__ import annotations

from pathlib import Path


class WeightsMissingError(FileNotFoundError):
    """A weight file a model or detector needs is not on this machine."""

    def __init__(self, path: str | Path, how_to_get: str):
        self.path = Path(path)
        super().__init__(f"weight file not found: {self.path}. {how_to_get}")
