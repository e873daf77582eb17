"""LatestFrameWorker with several cameras: per-camera slots drained through engine.process_batch."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from emotion_perception.engine import LatestFrameWorker, WorkerCounts
from emotion_perception.types import Box, EmotionEstimate, Frame


class GatedEngine:
    """Records each batch; blocks inside process_batch until released, to stage back-pressure."""

    def __init__(self):
        self.batches: list[list[tuple[str, int]]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.drops = 0
        self.fail_on: int | None = None

    def process_batch(self, frames):
        self.entered.set()
        assert self.gate.wait(5)
        self.batches.append([(f.source, f.stamp_ns) for f in frames])
        if any(f.stamp_ns == self.fail_on for f in frames):
            raise RuntimeError("model failed")
        return [[EmotionEstimate("face_1", Box(0, 0, 2, 2), np.full(7, 1 / 7, np.float32), 1, "m",
                                 stamp_ns=f.stamp_ns, source=f.source)] for f in frames]

    def record_drop(self, n=1):
        self.drops += n


def frame(source, stamp):
    return Frame(np.zeros((4, 4, 3), np.uint8), stamp, "cam", source)


@pytest.fixture
def setup():
    engine = GatedEngine()
    results, errors, drops = [], [], []
    worker = LatestFrameWorker(engine, lambda f, e: results.append((f.source, f.stamp_ns, len(e))),
                               lambda f, err: errors.append((f.source, f.stamp_ns, str(err))),
                               on_drop=lambda f: drops.append((f.source, f.stamp_ns)))
    yield engine, worker, results, errors, drops
    engine.gate.set()
    worker.close()


def test_latest_frame_of_each_camera_in_one_batch(setup):
    engine, worker, results, errors, drops = setup
    assert worker.submit(frame("a", 1))
    assert engine.entered.wait(5)  # frame 1 in flight; now both cameras pile up frames
    assert worker.submit(frame("a", 2))
    assert not worker.submit(frame("a", 3))  # replaced a's pending frame 2
    assert worker.submit(frame("b", 10))
    assert not worker.submit(frame("b", 11))
    engine.gate.set()
    assert worker.wait_idle(5)
    assert engine.batches == [[("a", 1)], [("a", 3), ("b", 11)]]
    assert results == [("a", 1, 1), ("a", 3, 1), ("b", 11, 1)]
    assert worker.dropped == 2 and engine.drops == 2 and errors == []
    assert drops == [("a", 2), ("b", 10)]  # each replaced frame reported once
    assert worker.submitted == 5 == len(results) + len(drops)


def test_a_failing_batch_does_not_stop_the_worker(setup):
    engine, worker, results, errors, drops = setup
    engine.fail_on = 5
    engine.gate.set()
    worker.submit(frame("a", 5))
    assert worker.wait_idle(5)
    worker.submit(frame("a", 6))
    assert worker.wait_idle(5)
    assert errors == [("a", 5, "model failed")] and results == [("a", 6, 1)]


def test_close_drops_pending_and_refuses_more(setup):
    engine, worker, results, errors, drops = setup
    worker.submit(frame("a", 1))
    assert engine.entered.wait(5)
    worker.submit(frame("b", 2))
    closer = threading.Thread(target=worker.close)
    closer.start()
    engine.gate.set()
    closer.join(5)
    assert worker.dropped == 1 and results == [("a", 1, 1)] and drops == [("b", 2)]
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(frame("a", 3))


def test_every_submitted_frame_is_accounted_for_exactly_once(setup):
    """Three threads race submits on two cameras: every snapshot balances, and once idle each frame
    was processed (one result or one error) or dropped, never both, never neither."""
    engine, worker, results, errors, drops = setup
    engine.fail_on = 7
    engine.gate.set()
    snapshots = []

    def camera(source, first):
        for stamp in range(first, first + 300):
            worker.submit(frame(source, stamp))
            if stamp % 50 == 0:
                snapshots.append(worker.counts())

    threads = [threading.Thread(target=camera, args=args) for args in (("a", 0), ("a", 1000), ("b", 0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert worker.wait_idle(10)
    end = worker.counts()
    for c in [*snapshots, end]:
        assert c.submitted == c.processed + c.dropped + c.pending + c.in_flight
    assert (end.submitted, end.pending, end.in_flight) == (900, 0, 0)
    assert end.processed + end.dropped == 900 and engine.drops == end.dropped
    delivered = [(s, t) for s, t, _ in results] + [(s, t) for s, t, _ in errors]
    assert len(delivered) == len(set(delivered)) == end.processed
    assert end.failed == len(errors) and len(drops) == end.dropped
    assert sorted(delivered + drops) == sorted([("a", t) for t in range(300)] + [("a", t) for t in range(1000, 1300)]
                                               + [("b", t) for t in range(300)])


def test_an_engine_that_returns_too_few_results_fails_the_whole_batch(setup):
    engine, worker, results, errors, drops = setup
    engine.gate.set()
    engine.process_batch = lambda frames: [[]]  # one result, whatever the batch size
    worker.submit(frame("a", 1))
    assert worker.wait_idle(5)
    assert results == [("a", 1, 0)]
    engine.gate.clear()
    entered = threading.Event()
    engine.process_batch = lambda frames: (entered.set(), engine.gate.wait(5), [[]])[-1]
    worker.submit(frame("a", 2))
    assert entered.wait(5)
    worker.submit(frame("a", 3))
    worker.submit(frame("b", 4))
    engine.gate.set()
    assert worker.wait_idle(5)
    assert results == [("a", 1, 0), ("a", 2, 0)]
    assert sorted(errors) == [("a", 3, "engine returned 1 results for a batch of 2 frames"),
                              ("b", 4, "engine returned 1 results for a batch of 2 frames")]
    assert worker.counts() == WorkerCounts(submitted=4, processed=4, dropped=0, failed=2, pending=0, in_flight=0)


def test_every_frame_ends_in_exactly_one_callback(setup):
    engine, worker, results, errors, drops = setup
    engine.fail_on = 4
    worker.submit(frame("a", 1))
    assert engine.entered.wait(5)
    for stamp in (2, 3, 4):  # 2 and 3 are replaced; 4 waits and then fails
        worker.submit(frame("a", stamp))
    worker.submit(frame("b", 20))
    engine.gate.set()
    assert worker.wait_idle(5)
    outcomes = sorted([r[1] for r in results] + [e[1] for e in errors] + [d[1] for d in drops])
    assert outcomes == [1, 2, 3, 4, 20] and worker.submitted == 5
    assert [e[1] for e in errors] == [4, 20]  # 20 shared the failing batch
