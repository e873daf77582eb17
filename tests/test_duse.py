"""DuSE head and the prompted text/vision passes on the tiny random-weight CLIP."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from emotion_perception.labels import CLASS_NAMES, NUM_CLASSES
from emotion_perception.models import duse
from emotion_perception.models.duse import prompted_image_features, vision_input_tokens
from emotion_perception.models.losses import criterion_for
from emotion_perception.models.prompts import PromptedTextEncoder, prompt_depth
from emotion_perception.models.registry import get_profile
from fake_clips import make_clips, one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return duse.build(get_profile("tiny-test-duse"))


def test_prompt_depths():
    assert [prompt_depth(d, 12) for d in ("shallow", "normal", "deep")] == [1, 4, 8]
    assert [prompt_depth(d, 2) for d in ("shallow", "normal", "deep")] == [1, 1, 2]
    with pytest.raises(ValueError, match="prompt depth"):
        prompt_depth("deepest", 12)


def test_prompted_text_encoder_reproduces_open_clip_when_context_is_the_word_embedding(model):
    """With the X-token embedding as context, the block-by-block pass equals clip.encode_text."""
    clip = model.clip
    enc = PromptedTextEncoder(clip, lambda texts: _tokenize(texts), CLASS_NAMES, n_ctx=4, depth=1)
    x_embedding = clip.token_embedding(_tokenize(["X"])[:, 1])  # [1, width]
    with torch.no_grad():
        enc.ctx.copy_(x_embedding.expand(1, 4, -1))
        ours = enc.eval()()
        reference = clip.encode_text(_tokenize([f"X X X X {name}." for name in CLASS_NAMES]))
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def _tokenize(texts):
    import open_clip

    return open_clip.get_tokenizer("ViT-Tiny-Test")(texts)


def test_shapes_and_cacheable_part(model):
    faces, _, _ = make_clips(per_class=1, frames=3)
    tokens = model.encode_faces(faces[:, 0])
    assert tokens.shape == (4, 17 * 64) == (4, model.face_dim)  # class token + 4x4 patches, width 64
    out = model(faces, torch.ones(4, 3, dtype=torch.bool))
    assert out.logits.shape == (4, NUM_CLASSES) and out.polarity_logits is None
    assert torch.isfinite(out.logits).all()
    with pytest.raises(ValueError, match="faces must be"):
        model.forward_window(torch.zeros(1, 3, 64), torch.ones(1, 3, dtype=torch.bool))


def test_block_by_block_vision_pass_equals_open_clip_without_prompts(model):
    faces, _, _ = make_clips(per_class=1, frames=1)
    pixels = model.pixels_to_input(faces[:, 0], model.face_size)
    with torch.no_grad():
        ours = prompted_image_features(model.clip.visual, vision_input_tokens(model.clip.visual, pixels), [])
        torch.testing.assert_close(ours, model.clip.visual(pixels), atol=1e-5, rtol=1e-5)
        tokens = model.encode_faces(faces[:, 0]).unsqueeze(1)
        prompted = model.frame_features(tokens, torch.ones(4, 1, dtype=torch.bool))
    assert model.vision_depth == 2
    assert (prompted.squeeze(1) - ours).abs().max() > 1e-3  # deep prompts change the vision output


def test_frame_position_makes_features_window_dependent(model):
    """The same frame at another window position encodes differently: why nothing past block 0 caches."""
    faces, _, _ = make_clips(per_class=1, frames=3)
    tokens = model.encode_faces(faces[0])  # 3 frames of one clip
    mask = torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        forward = model.frame_features(tokens.unsqueeze(0), mask)[0]
        backward = model.frame_features(tokens.flip(0).unsqueeze(0), mask)[0].flip(0)
    assert (forward[0] - backward[0]).abs().max() > 1e-4  # frame 0 at position 0 vs position 2
    torch.testing.assert_close(forward[1], backward[1], atol=1e-5, rtol=1e-5)  # middle stays in the middle


def test_streaming_equals_clip_inference(model):
    model.eval()
    faces, _, _ = make_clips(per_class=1, frames=4)
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[2, 2:] = False
    with torch.no_grad():
        clip_out = model(faces, mask)
        feats = torch.stack([torch.cat([model.encode_faces(faces[b, t:t + 1]) for t in range(4)]) for b in range(4)])
        stream = model.forward_window(feats, mask)
        left = model.forward_window(feats[2:3, [2, 3, 0, 1]], mask[2:3, [2, 3, 0, 1]])
    torch.testing.assert_close(stream.logits, clip_out.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(left.logits, stream.logits[2:3], atol=1e-4, rtol=1e-4)


def test_gradients_reach_exactly_the_trainable_parameters_and_clip_stays_frozen(model):
    before = {k: v.clone() for k, v in model.clip.state_dict().items()}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert not any(n.startswith("clip.") for n in trainable)
    assert not any(p.requires_grad for p in model.clip.parameters())
    faces, _, labels = make_clips(per_class=2, frames=2)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = criterion_for("duse")(model(faces, torch.ones(8, 2, dtype=torch.bool)), labels)
    loss.backward()
    with_grad = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert with_grad == trainable
    assert model.prompts.ctx.grad[1].abs().sum() > 0  # the deep (layer 1) prompts are trained too
    opt.step()
    after = model.clip.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("head", [{}, {"lsea_mode": "split"}, {"vision_depth": "proportional"}, {"descriptions": False}],
                         ids=["defaults", "lsea-split", "vision-proportional", "no-descriptions"])
def test_duse_learns_separable_clips(head):
    """The profile's head (paper LSEA, descriptions, 'text' vision depth), and each switch flipped."""
    torch.manual_seed(0)
    profile = get_profile("tiny-test-duse")
    model = duse.build(replace(profile, head={**profile.head, **head}))
    torch.manual_seed(0)
    faces, _, labels = make_clips(per_class=8, frames=3, seed=1)
    test_faces, _, test_labels = make_clips(per_class=6, frames=3, seed=2)
    b, t = faces.shape[:2]
    tokens = model.encode_faces(faces.flatten(0, 1)).unflatten(0, (b, t))  # the cacheable part, once
    mask = torch.ones(b, t, dtype=torch.bool)
    criterion = criterion_for("duse", model.head_config)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    untrained = held_out_accuracy(model, test_faces, test_labels)
    model.train()
    for _ in range(150):
        idx = torch.randperm(b, generator=gen)[:8]
        loss, _ = criterion(model.forward_window(tokens[idx], mask[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = held_out_accuracy(model, test_faces, test_labels)
    print(f"DuSE {head}: held-out accuracy {untrained:.3f} untrained -> {accuracy:.3f} (chance 0.25 over 4 classes)")
    assert accuracy > 0.8 and accuracy > untrained + 0.3


def held_out_accuracy(model, faces, labels):
    model.eval()
    with torch.no_grad():
        out = model(faces, torch.ones(faces.shape[:2], dtype=torch.bool))
    return (out.logits.argmax(1) == labels).float().mean().item()
