"""The streaming inference engine (docs/DESIGN.md, "The engine"): per-track feature windows, batched encodes,
CUDA streams with one CPU-compatible code path, and a latest-frame worker for back-pressure."""
from .core import EngineConfig, PerceptionEngine, check_frame
from .worker import LatestFrameWorker, WorkerCounts

__all__ = ["EngineConfig", "LatestFrameWorker", "PerceptionEngine", "WorkerCounts", "check_frame"]
