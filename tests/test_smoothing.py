"""Per-face smoothing of published probabilities: EMA on camera time, hysteresis on the class."""
from __future__ import annotations

import math

import numpy as np
import pytest

from emotion_perception.engine import EngineConfig, PerceptionEngine
from emotion_perception.engine.smoothing import Smoother


def onehot(i, n=3):
    p = np.zeros(n)
    p[i] = 1.0
    return p


def test_ema_moves_by_one_minus_exp_of_elapsed_time():
    ema = Smoother("ema", time_s=1.0)
    np.testing.assert_allclose(ema("a", onehot(0), 0.0), onehot(0))
    a = 1 - math.exp(-1.0)
    np.testing.assert_allclose(ema("a", onehot(1), 1.0), [1 - a, a, 0])


def test_ema_is_the_same_at_any_frame_rate():
    slow, fast = Smoother("ema", time_s=0.5), Smoother("ema", time_s=0.5)
    slow("f", onehot(0), 0.0)
    fast("f", onehot(0), 0.0)
    out_slow = slow("f", onehot(2), 0.6)
    for k in range(1, 7):  # six frames at 10 fps = the same 0.6 s
        out_fast = fast("f", onehot(2), 0.1 * k)
    np.testing.assert_allclose(out_fast, out_slow)


def test_hysteresis_holds_the_class_until_another_leads_by_the_margin():
    hold = Smoother("hysteresis", margin=0.2)
    assert np.argmax(hold("f", np.array([0.6, 0.4, 0.0]), 0.0)) == 0
    out = hold("f", np.array([0.45, 0.55, 0.0]), 0.1)  # leads by 0.1 < 0.2: still class 0
    np.testing.assert_allclose(out, [0.65 / 1.2, 0.55 / 1.2, 0.0])
    assert np.argmax(hold("f", np.array([0.3, 0.7, 0.0]), 0.2)) == 1  # leads by 0.4: switch
    assert np.argmax(hold("f", np.array([0.45, 0.55, 0.0]), 0.3)) == 1  # now class 1 is held
    assert np.argmax(hold("other", np.array([0.45, 0.55, 0.0]), 0.3)) == 1  # each face on its own
    hold.release("f")
    assert np.argmax(hold("f", np.array([0.55, 0.45, 0.0]), 0.4)) == 0
    assert sorted(hold.keys()) == ["f", "other"]


def test_none_passes_through_and_bad_settings_are_refused():
    p = np.array([0.2, 0.3, 0.5])
    assert Smoother("none")("f", p, 0.0) is p
    with pytest.raises(ValueError, match="smoothing must be one of"):
        Smoother("median")
    with pytest.raises(ValueError, match="smoothing"):
        EngineConfig(smoothing="ema", smoothing_time_s=0)


def test_engine_smooths_per_track_and_forgets_on_reset():
    from test_engine import FACE, ConvModel, always, frames

    engine = PerceptionEngine(ConvModel(), always(FACE),
                              EngineConfig(device="cpu", window=1, min_hits=1, smoothing="hysteresis",
                                           smoothing_margin=1.0))
    classes = {engine.process(f)[0].class_id for f in frames(6, "cam", seed=3)}
    assert len(classes) == 1  # a margin of 1 can never be overcome
    assert engine._smoother.keys() == [("cam", "face_1")]
    engine.reset()
    assert engine._smoother.keys() == []
