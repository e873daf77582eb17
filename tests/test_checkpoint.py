"""Head checkpoints: only trainable state, exact round trip, one clear refusal on any mismatch."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from emotion_perception.labels import CLASS_NAMES
from emotion_perception.models import duse, ous
from emotion_perception.errors import WeightsMissingError
from emotion_perception.models.checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from emotion_perception.models.registry import build_model, get_profile
from emotion_perception.models.weights import file_sha256
from fake_clips import make_clips, one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def profile():
    return get_profile("tiny-test-ous")


def fresh(profile, trained=False):
    """Tiny OUS; the seed fixes the random backbone (not saved in checkpoints) to the same weights.

    ``trained`` perturbs the head as training would, so it differs from a fresh head.
    """
    torch.manual_seed(0)
    model = ous.build(profile, load_head=False)
    if trained:
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 0.1)
    return model


def outputs(model):
    faces, scenes, _ = make_clips(per_class=1, frames=3)
    model.eval()
    with torch.no_grad():
        return model(faces, torch.ones(4, 3, dtype=torch.bool), scenes)


def test_round_trip_gives_identical_outputs_and_metadata(profile, tmp_path):
    model = fresh(profile, trained=True)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    path = save_checkpoint(tmp_path / "head.pt", model, profile.name, epoch=3, metrics={"uar": 0.5},
                           optimizer=opt, extra={"note": "test"})
    payload = torch.load(path, weights_only=True)
    assert not any(k.startswith("clip.") for k in payload["state"])  # the backbone is never saved
    assert set(payload["state"]) >= {n for n, p in model.named_parameters() if p.requires_grad}
    assert payload["class_order"] == list(CLASS_NAMES) and payload["kind"] == "ous"
    assert payload["code_version"].startswith("0.")

    other = fresh(profile)
    assert not torch.allclose(outputs(other).logits, outputs(model).logits)
    meta = load_checkpoint(path, other)
    expected = outputs(model)
    got = outputs(other)
    assert torch.equal(got.logits, expected.logits)
    assert torch.equal(got.polarity_logits, expected.polarity_logits)
    assert meta["epoch"] == 3 and meta["metrics"] == {"uar": 0.5} and meta["extra"] == {"note": "test"}
    opt.load_state_dict(meta["optimizer"])  # resumable


def test_mismatches_are_refused_with_what_differs(profile, tmp_path):
    model = fresh(profile)
    path = save_checkpoint(tmp_path / "head.pt", model, profile.name)

    with pytest.raises(CheckpointMismatchError, match="profile is 'tiny-test-ous', expected 'other'"):
        load_checkpoint(path, model, "other")

    torch.manual_seed(0)
    with pytest.raises(CheckpointMismatchError, match="model kind is 'ous', this model is 'duse'"):
        load_checkpoint(path, duse.build(get_profile("tiny-test-duse")), profile.name)

    bigger = dataclasses.replace(profile, head={**profile.head, "n_ctx": 6})
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatch prompts\.ctx.*n_ctx: 4 -> 6"):
        load_checkpoint(path, ous.build(bigger, load_head=False))

    payload = torch.load(path, weights_only=True)
    payload["class_order"] = list(reversed(CLASS_NAMES))
    torch.save(payload, tmp_path / "reordered.pt")
    with pytest.raises(CheckpointMismatchError, match="class order"):
        load_checkpoint(tmp_path / "reordered.pt", model)

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="not a readable head checkpoint"):
        load_checkpoint(tmp_path / "junk.pt", model)


def test_build_loads_the_profiles_head_checkpoint(profile, tmp_path):
    trained = fresh(profile, trained=True)
    save_checkpoint(tmp_path / "heads" / "tiny.pt", trained, profile.name)
    with_head = dataclasses.replace(profile, head={**profile.head, "checkpoint": "heads/tiny.pt"})
    torch.manual_seed(0)
    built = build_model(with_head, weights_dir=tmp_path)
    assert torch.equal(outputs(built).logits, outputs(trained).logits)

    digest = file_sha256(tmp_path / "heads" / "tiny.pt")
    ok = dataclasses.replace(with_head, head={**with_head.head, "sha256": digest})
    build_model(ok, weights_dir=tmp_path)
    bad = dataclasses.replace(with_head, head={**with_head.head, "sha256": "0" * 64})
    with pytest.raises(ValueError, match="SHA-256"):
        build_model(bad, weights_dir=tmp_path)

    missing = dataclasses.replace(profile, head={**profile.head, "checkpoint": "missing.pt"})
    with pytest.raises(WeightsMissingError, match="missing.pt"):
        build_model(missing, weights_dir=tmp_path)
