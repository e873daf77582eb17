"""Temperature calibration: the fit recovers a known temperature, ECE by hand, the profile field
reaches the engine, and `calibrate --write` edits only the calibration block of a profile."""
from __future__ import annotations

import numpy as np
import pytest

from emotion_perception.engine import EngineConfig
from emotion_perception.evaluation import calibration as C
from emotion_perception.models.registry import PROFILE_DIR, Profile


def test_ece_by_hand():
    # four faces at confidence 0.9, three right: one bin, |0.75 - 0.9| = 0.15
    p = np.array([[0.9, 0.1] + [0.0] * 5] * 4)
    assert C.ece(p, np.array([0, 0, 0, 1])) == pytest.approx(0.15)
    # two bins: 0.9 (right) and 0.55 (wrong): (|1 - 0.9| + |0 - 0.55|) / 2
    q = np.array([[0.9, 0.1] + [0.0] * 5, [0.55, 0.45] + [0.0] * 5])
    assert C.ece(q, np.array([0, 1])) == pytest.approx((0.1 + 0.55) / 2)


def test_temperature_keeps_the_argmax_and_is_a_power_of_the_probabilities():
    p = np.array([[0.5, 0.25, 0.1, 0.05, 0.05, 0.03, 0.02]])
    t = C.apply_temperature(p, 2.0)
    assert t[0] == pytest.approx(np.sqrt(p[0]) / np.sqrt(p[0]).sum(), abs=1e-9) and t.argmax() == 0


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_the_fit_recovers_the_temperature_that_generated_the_labels(true_t):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(20000, 7))
    truth = np.exp(logits / true_t)
    truth /= truth.sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in truth])
    model = np.exp(logits - logits.max(1, keepdims=True))
    model /= model.sum(1, keepdims=True)  # what an uncalibrated model publishes
    fitted = C.fit_temperature(model, labels)
    assert fitted == pytest.approx(true_t, rel=0.05)
    report = C.calibration_report(model, labels)
    assert report["ece_after"] < report["ece_before"] / 3 and report["nll_after"] < report["nll_before"]
    assert C.calibration_report(model, labels, measured_at=2.0)["temperature"] == pytest.approx(2 * fitted)


def test_write_profile_temperature_replaces_only_the_calibration_block(tmp_path):
    path = tmp_path / "lite.yaml"
    path.write_text((PROFILE_DIR / "lite-fer2013.yaml").read_text())
    before = Profile.from_yaml(path)
    C.write_profile_temperature(path, 1.8, "first")
    C.write_profile_temperature(path, 2.25, "second fit")
    after = Profile.from_yaml(path)
    assert after.calibration == {"temperature": 2.25}
    assert path.read_text().count("calibration:") == 1 and "# second fit" in path.read_text()
    assert (after.head, after.detector, after.crop, after.window) == (before.head, before.detector, before.crop,
                                                                     before.window)


def test_engine_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature must be >= 0.01"):
        EngineConfig(temperature=0)


def test_the_lite_profile_temperature_reaches_the_engine_and_calibrate_fits_one(tmp_path, astronaut, capsys):
    pytest.importorskip("fer")
    import json

    import cv2

    from emotion_perception.cli import main
    from emotion_perception.models.registry import get_profile
    from emotion_perception.pipeline import create_engine

    temperature = get_profile("lite-fer2013").calibration["temperature"]
    assert 0 < temperature != 1.0
    engine, _ = create_engine("lite-fer2013", device="cpu", detector="opencv")
    assert engine.config.temperature == temperature
    engine, _ = create_engine("lite-fer2013", device="cpu", detector="opencv", temperature=1.0)
    assert engine.config.temperature == 1.0  # --set temperature=1 turns it off
    (tmp_path / "set" / "images").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "set" / "images" / "astronaut.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    (tmp_path / "set" / "images" / "labels.csv").write_text(
        "file,face_id,x,y,w,h,label,confidence,note\nastronaut.png,0,170,40,120,140,happy,high,\n")
    assert main(["calibrate", str(tmp_path / "set"), "--profile", "lite-fer2013", "--device", "cpu",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    # one right answer: the best temperature makes it as sure as allowed (the grid's sharp end)
    assert report["samples"] == 1 and report["accuracy"] == 1.0 and report["temperature"] == pytest.approx(0.05)
    assert report["ece_after"] < report["ece_before"]
