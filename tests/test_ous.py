"""OUS head on the tiny random-weight CLIP: shapes, frozen backbone, α switch, streaming parity, learning."""
from __future__ import annotations

import pytest
import torch

from emotion_perception.labels import NUM_CLASSES
from emotion_perception.models import ous
from emotion_perception.models.losses import AlphaSwitchCriterion, criterion_for, polarity_targets_from_labels
from emotion_perception.models.registry import get_profile
from fake_clips import make_clips, one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return ous.build(get_profile("tiny-test-ous"))


def clip_state(model):
    return {k: v.clone() for k, v in model.clip.state_dict().items()}


def test_feature_and_output_shapes(model):
    faces, scenes, _ = make_clips(per_class=1, frames=3)
    f = model.encode_faces(faces[:, 0])
    s = model.encode_scenes(scenes[:, 0])
    assert f.shape == (4, 64) and model.face_dim == 64
    assert s.shape == (4, 64 + 4 * 64) and model.scene_dim == s.shape[1]
    # the scene vector starts with the same CLIP embedding the face path computes
    assert torch.allclose(model.encode_scenes(faces[:, 0])[:, :64], f, atol=1e-5)
    out = model(faces, torch.ones(4, 3, dtype=torch.bool), scenes)
    assert out.logits.shape == (4, NUM_CLASSES)
    assert out.polarity_logits.shape == (4, 3)
    assert out.aux["face"].shape == out.aux["scene"].shape == (4, 64)
    assert torch.isfinite(out.logits).all()


def test_bad_input_gets_one_clear_error(model):
    with pytest.raises(ValueError, match="uint8 pixels"):
        model.encode_faces(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    feats = torch.zeros(1, 3, 64)
    with pytest.raises(ValueError, match="scene features"):
        model.forward_window(feats, torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="max_frames"):
        model.forward_window(torch.zeros(1, 40, 64), torch.ones(1, 40, dtype=torch.bool),
                             torch.zeros(1, 40, model.scene_dim))


def test_streaming_equals_clip_inference(model):
    """forward(clip) == forward_window on per-frame features encoded one frame at a time."""
    model.eval()
    faces, scenes, _ = make_clips(per_class=1, frames=5)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[1, 3:] = False
    with torch.no_grad():
        clip_out = model(faces, mask, scenes)
        f = torch.stack([torch.cat([model.encode_faces(faces[b, t:t + 1]) for t in range(5)]) for b in range(4)])
        s = torch.stack([torch.cat([model.encode_scenes(scenes[b, t:t + 1]) for t in range(5)]) for b in range(4)])
        stream = model.forward_window(f, mask, s, mask)
        # a ring buffer that fills from the other end: same valid frames, padding first
        left = model.forward_window(f[1:2, [3, 4, 0, 1, 2]], mask[1:2, [3, 4, 0, 1, 2]],
                                    s[1:2, [3, 4, 0, 1, 2]], mask[1:2, [3, 4, 0, 1, 2]])
    torch.testing.assert_close(stream.logits, clip_out.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(stream.polarity_logits, clip_out.polarity_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(left.logits, stream.logits[1:2], atol=1e-4, rtol=1e-4)


def test_gradients_reach_exactly_the_trainable_parameters(model):
    before = clip_state(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not any(n.startswith("clip.") for n in trainable)
    faces, scenes, labels = make_clips(per_class=2, frames=3)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss, parts = AlphaSwitchCriterion(alpha=100.0)(model(faces, torch.ones(8, 3, dtype=torch.bool), scenes), labels)
    assert parts["full"] == 1.0
    loss.backward()
    with_grad = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert with_grad == trainable
    opt.step()
    after = model.clip.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_alpha_switch_changes_which_losses_contribute(model):
    faces, scenes, labels = make_clips(per_class=2, frames=2)
    mask = torch.ones(8, 2, dtype=torch.bool)
    criterion = AlphaSwitchCriterion(alpha=0.5, momentum=0.5)

    def step(update=True):
        model.zero_grad()
        out = model(faces, mask, scenes)
        loss, parts = criterion(out, labels, update=update)
        loss.backward()
        return loss, parts, out

    # first batch: no running value yet -> all three terms, and polarity gradients flow
    loss, parts, out = step()
    assert parts["full"] == 1.0 and {"similarity", "polarity", "contrastive"} <= parts.keys()
    assert loss.item() == pytest.approx(parts["similarity"] + parts["polarity"] + parts["contrastive"], rel=1e-5)
    assert model.polarity.classify.weight.grad.abs().sum() > 0
    assert criterion.running == pytest.approx(parts["contrastive"])

    # running contrastive loss below alpha -> contrastive only: the polarity classifier gets nothing
    criterion.running = 0.1
    loss, parts, _ = step(update=False)
    assert parts["full"] == 0.0 and "polarity" not in parts
    assert loss.item() == pytest.approx(parts["contrastive"])
    assert model.polarity.classify.weight.grad is None
    assert criterion.running == 0.1  # update=False leaves the state alone

    # the running value is an EMA of the contrastive loss and can climb back above alpha
    criterion.running = 0.45
    _, parts, _ = step()
    assert criterion.running == pytest.approx(0.5 * 0.45 + 0.5 * parts["contrastive"])
    assert criterion.full == (criterion.running > 0.5)

    restored = criterion_for("ous", {"alpha": 3.0})
    restored.load_state_dict(criterion.state_dict())
    assert restored.state_dict() == criterion.state_dict()


def test_explicit_polarity_targets_override_the_label_mapping(model):
    faces, scenes, labels = make_clips(per_class=1, frames=2)
    out = model(faces, torch.ones(4, 2, dtype=torch.bool), scenes)
    crit = AlphaSwitchCriterion(alpha=100.0)
    _, implied = crit(out, labels, update=False)
    _, given = crit(out, labels, polarity_targets=torch.tensor([0, 0, 0, 0]), update=False)
    assert implied["polarity"] != pytest.approx(given["polarity"])


def test_ous_learns_separable_clips(model):
    """A few hundred steps on cached features drive held-out accuracy far above chance."""
    torch.manual_seed(0)
    faces, scenes, labels = make_clips(per_class=12, frames=4, seed=1)
    test_faces, test_scenes, test_labels = make_clips(per_class=6, frames=4, seed=2)

    def features(f, s):  # frozen encoder: encode once, train the head on cached features
        b, t = f.shape[:2]
        return (model.encode_faces(f.flatten(0, 1)).unflatten(0, (b, t)),
                model.encode_scenes(s.flatten(0, 1)).unflatten(0, (b, t)))

    f, s = features(faces, scenes)
    tf, ts = features(test_faces, test_scenes)
    mask = torch.ones(f.shape[:2], dtype=torch.bool)
    # The profile's α switch: all three losses until the running contrastive loss drops below α.
    # (With the similarity loss kept on, classes that share a scene — sad and angry here — collapse.)
    criterion = criterion_for("ous", model.head_config)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    test_mask = mask[: len(test_labels)]
    model.eval()
    with torch.no_grad():
        untrained = held_out_accuracy(model.forward_window(tf, test_mask, ts, test_mask).logits, test_labels)
    model.train()
    for _ in range(200):
        idx = torch.randperm(len(labels), generator=gen)[:16]
        loss, _ = criterion(model.forward_window(f[idx], mask[idx], s[idx], mask[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model.forward_window(tf, test_mask, ts, test_mask)
    accuracy = held_out_accuracy(out.logits, test_labels)
    polarity_accuracy = held_out_accuracy(out.polarity_logits, polarity_targets_from_labels(test_labels))
    print(f"OUS held-out accuracy {untrained:.3f} untrained -> {accuracy:.3f} (chance 0.25), "
          f"polarity {polarity_accuracy:.3f}")
    assert accuracy > 0.8 and accuracy > untrained + 0.3
    assert criterion.running < criterion.alpha  # the switch did turn the auxiliary losses off


def held_out_accuracy(logits, targets):
    return (logits.argmax(1) == targets).float().mean().item()
