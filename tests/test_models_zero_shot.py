"""Zero-shot dual-stream CLIP on the tiny random-weight config: text once, masks, the scene prior."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from emotion_perception.labels import CLASS_NAMES, NUM_CLASSES, POLARITY_OF_CLASS, class_id
from emotion_perception.errors import WeightsMissingError
from emotion_perception.models.backbone import create_clip
from emotion_perception.models.registry import build_model, get_profile
from emotion_perception.models.zero_shot import (
    FACE_TEMPLATES,
    SCENE_PROMPTS,
    ZeroShotCLIP,
    apply_polarity_prior,
    face_ambiguity,
)

POL = torch.as_tensor(POLARITY_OF_CLASS)


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return create_clip("ViT-Tiny-Test")


@pytest.fixture(scope="module")
def model(clip):
    return ZeroShotCLIP(*clip, model_id="tiny")


def pixels(n: int, seed: int = 0, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)


def test_text_embeddings_are_computed_once_at_build(clip):
    clip_model, tokenizer = clip
    calls = []
    original = clip_model.encode_text

    def counting(*args, **kwargs):
        calls.append(args[0].shape[0])
        return original(*args, **kwargs)

    clip_model.encode_text = counting
    try:
        model = ZeroShotCLIP(clip_model, tokenizer)
    finally:
        del clip_model.encode_text
    n_scene = sum(len(prompts) for prompts in SCENE_PROMPTS.values())
    assert len(calls) == 1 and calls[0] == NUM_CLASSES * len(FACE_TEMPLATES) + n_scene
    with torch.no_grad():
        feats = model.encode_faces(pixels(4))
        model.forward_window(feats.view(2, 2, -1), torch.ones(2, 2, dtype=torch.bool),
                             model.encode_scenes(pixels(4, 1)).view(2, 2, -1))
    assert len(calls) == 1
    # the text tower is not kept: only the vision tower and the text embeddings (buffers)
    assert not any(name.startswith(("transformer", "token_embedding")) for name, _ in model.named_parameters())
    assert {"class_text", "polarity_text", "logit_scale"} <= set(dict(model.named_buffers()))


def test_shapes_and_normalisation(model):
    assert model.face_size == model.scene_size == 64 and model.uses_scene
    with torch.no_grad():
        faces = model.encode_faces(pixels(6))
        scenes = model.encode_scenes(pixels(6, 1))
        out = model.forward_window(faces.view(2, 3, -1), torch.ones(2, 3, dtype=torch.bool), scenes.view(2, 3, -1))
    assert faces.shape == (6, 64) and scenes.shape == (6, 64)
    torch.testing.assert_close(faces.norm(dim=-1), torch.ones(6))
    assert out.logits.shape == (2, NUM_CLASSES) and out.polarity_logits.shape == (2, 3)
    torch.testing.assert_close(out.logits.exp().sum(-1), torch.ones(2))
    assert model.class_text.shape == (NUM_CLASSES, 64) and model.polarity_text.shape == (3, 64)
    torch.testing.assert_close(model.class_text.norm(dim=-1), torch.ones(NUM_CLASSES))


def test_masked_mean_ignores_padded_frames(model):
    with torch.no_grad():
        faces = model.encode_faces(pixels(4)).view(1, 4, -1)
        scenes = model.encode_scenes(pixels(4, 1)).view(1, 4, -1)
        mask = torch.tensor([[True, True, False, False]])
        scene_mask = torch.tensor([[True, False, False, False]])
        out = model.forward_window(faces, mask, scenes, scene_mask)
        junk_faces, junk_scenes = faces.clone(), scenes.clone()
        junk_faces[0, 2:] = torch.randn(2, 64)
        junk_scenes[0, 1:] = torch.randn(3, 64)
        junk = model.forward_window(junk_faces, mask, junk_scenes, scene_mask)
        short = model.forward_window(faces[:, :2], mask[:, :2], scenes[:, :1], scene_mask[:, :1])
    torch.testing.assert_close(junk.logits, out.logits)
    torch.testing.assert_close(junk.polarity_logits, out.polarity_logits)
    torch.testing.assert_close(short.logits, out.logits)


def test_polarity_prior_moves_an_ambiguous_face_but_not_a_confident_one():
    happy, sad = class_id("happy"), class_id("sad")
    positive_scene = torch.tensor([[0.05, 0.1, 0.85]])  # negative, neutral, positive
    ambiguous = torch.full((1, NUM_CLASSES), 0.04)
    ambiguous[0, happy] = ambiguous[0, sad] = 0.40
    moved = apply_polarity_prior(ambiguous, positive_scene, 0.5, POL)
    assert moved[0, happy] > 0.55 and moved[0, sad] < 0.3
    torch.testing.assert_close(moved.sum(-1), torch.ones(1))

    confident = torch.full((1, NUM_CLASSES), 0.01)
    confident[0, sad] = 0.94
    kept = apply_polarity_prior(confident, positive_scene, 0.5, POL)
    assert (kept - confident).abs().max() < 0.01 and kept.argmax() == sad

    uniform_scene = torch.full((1, 3), 1 / 3)
    torch.testing.assert_close(apply_polarity_prior(ambiguous, uniform_scene, 0.5, POL), ambiguous)
    torch.testing.assert_close(apply_polarity_prior(ambiguous, positive_scene, 0.0, POL), ambiguous)


def test_face_ambiguity():
    torch.testing.assert_close(face_ambiguity(torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.6, 0.3, 0.1]])),
                               torch.tensor([1.0, 0.0, 0.7]))


def test_forward_window_applies_the_prior_from_the_scene_stream(model):
    """With scene features equal to the positive-polarity text the scene reads positive, and an
    ambiguous face shifts towards positive classes relative to the face-only answer."""
    with torch.no_grad():
        faces = model.encode_faces(pixels(2)).view(1, 2, -1)
        mask = torch.ones(1, 2, dtype=torch.bool)
        face_only = model.forward_window(faces, mask)
        positive = model.polarity_text[2].expand(1, 2, -1)
        out = model.forward_window(faces, mask, positive, mask)
        no_scene = model.forward_window(faces, mask, positive, torch.zeros(1, 2, dtype=torch.bool))
    assert face_only.polarity_logits is None
    p_pol = out.polarity_logits.softmax(-1)[0]
    assert p_pol.argmax() == 2
    ratio = out.logits.softmax(-1)[0] / face_only.logits.softmax(-1)[0]
    assert ratio[class_id("happy")] > ratio[class_id("sad")]
    # a window with no scene frame: uniform polarity, the face answer unchanged
    torch.testing.assert_close(no_scene.polarity_logits, torch.zeros(1, 3))
    torch.testing.assert_close(no_scene.logits.softmax(-1), face_only.logits.softmax(-1))


def test_build_from_a_local_checkpoint_matches(clip, model, tmp_path):
    clip_model, _ = clip
    (tmp_path / "clip").mkdir()
    torch.save(clip_model.state_dict(), tmp_path / "clip" / "tiny.pt")
    profile = dataclasses.replace(
        get_profile("tiny-test-zeroshot"), backbone={"model": "ViT-Tiny-Test", "checkpoint": "clip/tiny.pt"}
    )
    loaded = build_model(profile, weights_dir=tmp_path)
    assert loaded.model_id == "tiny-test-zeroshot"
    torch.testing.assert_close(loaded.class_text, model.class_text)
    x = pixels(3, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_faces(x), model.encode_faces(x))


def test_missing_checkpoint_is_one_clear_error(tmp_path):
    profile = dataclasses.replace(
        get_profile("tiny-test-zeroshot"), backbone={"model": "ViT-Tiny-Test", "checkpoint": "clip/absent.pt"}
    )
    with pytest.raises(WeightsMissingError, match=r"absent\.pt.*models/fetch tiny-test-zeroshot"):
        build_model(profile, weights_dir=tmp_path)


def test_bad_input_and_settings_are_refused(clip, model):
    with pytest.raises(ValueError, match="64x64"):
        model.encode_faces(pixels(1, size=32))
    with pytest.raises(ValueError, match="uint8"):
        model.encode_scenes(torch.zeros(1, 64, 64, 3))
    with pytest.raises(ValueError, match="prior_weight"):
        ZeroShotCLIP(*clip, prior_weight=1.0)


def test_registry_builds_the_tiny_profile():
    model = build_model("tiny-test-zeroshot")
    assert isinstance(model, ZeroShotCLIP) and model.model_id == "tiny-test-zeroshot"
    assert model.prior_weight == get_profile("tiny-test-zeroshot").head["prior_weight"]
    assert len(CLASS_NAMES) == model.class_text.shape[0]
