"""The switches for what the OUS and DuSE papers leave open: each changes the forward pass (or the
optimisation) and is reachable from the training config. That each DuSE switch still learns the
separable fake clips is test_duse.py::test_duse_learns_separable_clips; OUS with warm-up and
clipping is here."""
from __future__ import annotations

import math
from dataclasses import replace

import open_clip
import pytest
import torch
import torch.nn.functional as F
import yaml
from fake_clips import make_clips, one_thread  # noqa: F401  (autouse fixture)
from fake_datasets import make_dfew

from emotion_perception.labels import CLASS_NAMES
from emotion_perception.models import duse, ous
from emotion_perception.models.checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from emotion_perception.models.prompts import CLASS_DESCRIPTIONS, PromptedTextEncoder, class_prompts
from emotion_perception.models.registry import get_profile
from emotion_perception.training.cli import evaluate_main, train_main
from emotion_perception.training.jobs import with_head_overrides
from emotion_perception.training.config import ConfigError, TrainConfig
from emotion_perception.training.trainer import Trainer, trainable_parameters

EOT = 49407  # CLIP's end-of-text token id


def build(kind: str, seed: int = 0, **head):
    module = {"duse": duse, "ous": ous}[kind]
    profile = get_profile(f"tiny-test-{kind}")
    torch.manual_seed(seed)
    return module.build(replace(profile, head={**profile.head, **head}))


def same_weights_logits(a, b, faces, scenes=None):
    """Logits of two models whose shared trainable tensors are made equal."""
    b.load_state_dict(a.state_dict(), strict=False)
    mask = torch.ones(faces.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        return a.eval()(faces, mask, scenes).logits, b.eval()(faces, mask, scenes).logits


# ------------------------------------------------------------------------------ descriptions


def test_descriptions_fit_clips_context_with_the_real_tokenizer():
    tokenizer = open_clip.get_tokenizer("ViT-L-14")  # the BPE vocabulary ships with open_clip
    for n_ctx in (4, 16, 32):
        tokens = tokenizer(class_prompts(CLASS_NAMES, n_ctx, descriptions=True))
        ends = (tokens == EOT).int().argmax(1)
        assert (tokens[:, -1] == 0).all() and (ends < 76).all()  # EOT inside the 77-token context
        plain = tokenizer(class_prompts(CLASS_NAMES, n_ctx))
        for row, short, name in zip(tokens, plain, CLASS_NAMES):
            n = int((short == EOT).int().argmax()) - 1  # "[SOT] X .. X name ." without EOT
            assert torch.equal(row[: n + 1], short[: n + 1])  # the description follows the class name
            sentence = tokenizer([CLASS_DESCRIPTIONS[name]])[0]
            length = int((sentence == EOT).int().argmax()) - 1
            assert torch.equal(row[n + 1 : n + 1 + length], sentence[1 : 1 + length])
    print("tokens with 4 context tokens:", ((tokenizer(class_prompts(CLASS_NAMES, 4, True)) != 0).sum(1)).tolist())
    # OUS's 64 CoOp tokens leave no room for a sentence: one clear error.
    clip = build("duse").clip
    with pytest.raises(ValueError, match="64 context tokens \\+ class name \\+ description exceed the text context"):
        PromptedTextEncoder(clip, tokenizer, CLASS_NAMES, 64, descriptions=True)


def test_description_prompts_equal_open_clip_on_the_same_text():
    """With the X-token embedding as context, the prompted pass equals clip.encode_text of the sentence."""
    clip = build("duse").clip
    tokenizer = open_clip.get_tokenizer("ViT-Tiny-Test")
    enc = PromptedTextEncoder(clip, tokenizer, CLASS_NAMES, n_ctx=4, descriptions=True)
    with torch.no_grad():
        enc.ctx.copy_(clip.token_embedding(tokenizer(["X"])[:, 1]).expand(1, 4, -1))
        ours = enc.eval()()
        reference = clip.encode_text(tokenizer([f"X X X X {n}. {CLASS_DESCRIPTIONS[n]}" for n in CLASS_NAMES]))
        plain = clip.encode_text(tokenizer([f"X X X X {n}." for n in CLASS_NAMES]))
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    assert (ours - plain).abs().max() > 1e-2


@pytest.mark.parametrize("kind", ["duse", "ous"])
def test_descriptions_change_the_forward_pass(kind):
    faces, scenes, _ = make_clips(per_class=1, frames=2)
    with_text = build(kind, descriptions=True)
    without = build(kind, descriptions=False)
    a, b = same_weights_logits(with_text, without, faces, scenes if kind == "ous" else None)
    assert (a - b).abs().max() > 1e-3


# ------------------------------------------------------------------------------ vision depth


def test_vision_depth_settings():
    # ViT-L/14: 12 text layers, 24 ViT blocks; 'normal' text depth = 4.
    assert duse.vision_prompt_depth("text", 4, 12, 24) == 4
    assert duse.vision_prompt_depth("proportional", 4, 12, 24) == 8
    assert duse.vision_prompt_depth(6, 4, 12, 24) == 6
    for bad in (0, 25, "half", True):
        with pytest.raises(ValueError, match="vision_depth"):
            duse.vision_prompt_depth(bad, 4, 12, 24)
    # Tiny CLIP: 2 text layers ('deep' = 2), 4 ViT blocks.
    text, proportional = build("duse"), build("duse", vision_depth="proportional")
    assert text.vision_depth == 2 and text.vision_source.tolist() == [0, 1]
    assert proportional.vision_depth == 4 and proportional.vision_source.tolist() == [0, 0, 1, 1]
    prompts = proportional.vision_prompts(torch.tensor([0]))
    assert len(prompts) == 4 and torch.equal(prompts[2], prompts[3])  # blocks 2, 3 share text layer 1
    faces, _, _ = make_clips(per_class=1, frames=2)
    a, b = same_weights_logits(text, proportional, faces)
    assert (a - b).abs().max() > 1e-4


# ---------------------------------------------------------------------------------- LSEA mode


def test_paper_lsea_matches_eqs_12_13_computed_by_hand():
    model = build("duse", lsea_mode="paper")
    assert not hasattr(model, "agg_query")
    video = F.normalize(torch.randn(3, 64), dim=-1)
    text = F.normalize(torch.randn(7, 64), dim=-1)
    beta, scale = model.beta, 1 / 0.07
    with torch.no_grad():
        # Identity maps at the start: every head is β·video + (1−β)·softmax(s·cos)·text.
        expected = beta * video + (1 - beta) * (scale * video @ text.t()).softmax(-1) @ text
        torch.testing.assert_close(model.paper_aggregation(video, text), expected, atol=1e-5, rtol=1e-5)
        for layer in (model.agg_video, model.agg_text):
            layer.weight.add_(0.1 * torch.randn_like(layer.weight))
        model.agg_log_scale.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        heads = []
        for h in range(4):  # head by head, the equations as written
            rows = slice(h * 64, (h + 1) * 64)
            v = video @ model.agg_video.weight[rows].t() + model.agg_video.bias[rows]
            t = text @ model.agg_text.weight[rows].t() + model.agg_text.bias[rows]
            cos = F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).t()
            heads.append(beta * v + (1 - beta) * (math.exp(h + 1) * cos).softmax(-1) @ t)
        torch.testing.assert_close(model.paper_aggregation(video, text), torch.stack(heads).mean(0),
                                   atol=1e-5, rtol=1e-5)


def test_lsea_modes_differ_and_unknown_mode_is_refused():
    faces, _, _ = make_clips(per_class=1, frames=2)
    a, b = same_weights_logits(build("duse", lsea_mode="paper"), build("duse", lsea_mode="split"), faces)
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="lsea_mode"):
        build("duse", lsea_mode="both")


# ------------------------------------------------------------------- OUS warm-up and clipping


def _batches(per_class: int, seed: int, batch: int = 8):
    faces, scenes, labels = make_clips(per_class=per_class, frames=2, seed=seed)
    from emotion_perception.models.losses import polarity_targets_from_labels

    out = []
    for i in range(0, len(labels), batch):
        sl = slice(i, i + batch)
        out.append({"face": faces[sl], "scene": scenes[sl], "mask": torch.ones(faces[sl].shape[:2], dtype=torch.bool),
                    "label": labels[sl], "polarity": polarity_targets_from_labels(labels[sl]),
                    "index": torch.arange(len(labels))[sl]})
    return out


def test_warmup_ramps_the_lr_and_clipping_caps_the_gradient_while_ous_still_learns():
    model = build("ous")
    optimizer = torch.optim.Adam(trainable_parameters(model), lr=2e-3)
    seen = []
    step = optimizer.step

    def recording_step(*args, **kwargs):
        grads = [p.grad for p in trainable_parameters(model) if p.grad is not None]
        seen.append((optimizer.param_groups[0]["lr"], float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])))))
        return step(*args, **kwargs)

    optimizer.step = recording_step
    trainer = Trainer(model, optimizer, warmup_steps=6, grad_clip=0.5, progress=False)
    train, test = _batches(per_class=8, seed=1), _batches(per_class=6, seed=2)
    untrained = trainer.evaluate(test).scores.war
    for _ in range(12):
        trainer.train_epoch(train)
    lrs = [lr for lr, _ in seen]
    assert lrs[:7] == pytest.approx([2e-3 * k / 6 for k in range(1, 7)] + [2e-3])  # linear, then the base LR
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-3)  # the schedule's LR is left alone
    assert max(norm for _, norm in seen) <= 0.5 + 1e-4  # every step saw the clipped gradient
    assert trainer.steps_done == 48
    accuracy = trainer.evaluate(test).scores.war
    print(f"OUS with warm-up + clipping: held-out accuracy {untrained:.3f} -> {accuracy:.3f} (chance 0.25)")
    assert accuracy > 0.8


# ------------------------------------------------------------------- training config reach


def test_head_switches_come_from_the_training_config_and_reach_evaluation(tmp_path):
    cfg = TrainConfig.from_dict({"profile": "tiny-test-duse", "dataset": {"root": "/d", "fold": 1},
                                 "head": {"lsea_mode": "split", "vision_depth": "proportional"}})
    profile = with_head_overrides(get_profile(cfg.profile), cfg.head)
    assert profile.head["lsea_mode"] == "split" and profile.head["n_ctx"] == 4
    with pytest.raises(ConfigError, match="unknown keys \\['lsea'\\] for a duse head"):
        with_head_overrides(get_profile("tiny-test-duse"), {"lsea": "paper"})
    with pytest.raises(ConfigError, match="head: expected a mapping"):
        TrainConfig.from_dict({"profile": "p", "dataset": {"root": "/d", "fold": 1}, "head": ["lsea_mode"]})

    make_dfew(tmp_path / "dfew", clips_per_class=2, frames=(2, 4), size=32)
    config = {"profile": "tiny-test-duse", "device": "cpu", "out": str(tmp_path / "run"),
              "dataset": {"kind": "dfew", "root": str(tmp_path / "dfew"), "fold": 1, "num_frames": 2,
                          "val_fraction": 0.5},
              "train": {"epochs": 1, "batch_size": 7, "lr": 1e-3, "num_workers": 0, "warmup_epochs": 1,
                        "grad_clip": 1.0},
              "augment": {"flip": 0.5, "crop_scale": 0.8, "rotation": 10, "colour_jitter": 0.2},
              "head": {"lsea_mode": "split", "vision_depth": "proportional"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert train_main(["--config", str(tmp_path / "c.yaml"), "--no-progress"]) == 0
    best = tmp_path / "run" / "best.pt"
    # Evaluation rebuilds the model with the checkpoint's head settings (the split mode's tensors load).
    assert evaluate_main(["--checkpoint", str(best), "--dataset", "dfew", "--root", str(tmp_path / "dfew"),
                          "--fold", "1", "--num-workers", "0", "--no-progress"]) == 0
    # The profile's own model has other forward settings: the checkpoint is refused, not half-loaded.
    with pytest.raises(CheckpointMismatchError, match="head setting vision_depth is 'proportional'"):
        load_checkpoint(best, build("duse", lsea_mode="split"), "tiny-test-duse")


def test_checkpoint_with_other_forward_settings_is_refused(tmp_path):
    text = build("duse")
    save_checkpoint(tmp_path / "a.pt", text, "tiny-test-duse", epoch=1)
    with pytest.raises(CheckpointMismatchError, match="head setting descriptions is True, this model's is False"):
        load_checkpoint(tmp_path / "a.pt", build("duse", descriptions=False), "tiny-test-duse")
    load_checkpoint(tmp_path / "a.pt", build("duse", seed=1), "tiny-test-duse")  # same settings: loads
