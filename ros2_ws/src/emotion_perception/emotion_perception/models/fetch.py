"""``emotion-fetch`` (``models/fetch`` in a checkout): download and verify the weights a model profile needs.

Robots run offline; run this on a machine with internet, then copy the weights directory to the
robot (or fetch on the robot while it is online). CLIP checkpoints come from the Hugging Face hub
repos open_clip downloads its pretrained weights from; detector files from the URLs face-alignment uses. Every file is
checked against its sha256: a published one from the profile where it exists, otherwise the hash
computed at the first download is recorded in ``<weights dir>/checksums.sha256`` and checked from
then on.

    emotion-fetch --list [--weights-dir DIR]
    emotion-fetch PROFILE [PROFILE ...] [--weights-dir DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from .registry import Profile, UnknownProfileError, get_profile, list_profiles
from .weights import WEIGHTS_ENV, WeightFile, default_weights_dir, file_sha256

CHECKSUMS = "checksums.sha256"
CONNECT_TIMEOUT_S = 10.0


class FetchError(RuntimeError):
    """One failure, with a message that says what to do; the CLI prints it without a traceback."""


# ------------------------------------------------------------------------------------ checksums

def read_checksums(weights_dir: Path) -> dict[str, str]:
    """``checksums.sha256`` (sha256sum format: "<hex>  <relative path>") -> {path: hex}."""
    path = weights_dir / CHECKSUMS
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            sums[name] = digest
    return sums


def record_checksum(weights_dir: Path, relative: str, digest: str) -> None:
    sums = read_checksums(weights_dir)
    sums[relative] = digest
    text = "".join(f"{d}  {n}\n" for n, d in sorted(sums.items()))
    (weights_dir / CHECKSUMS).write_text(text)


def verify(wf: WeightFile, path: Path, weights_dir: Path, say=print) -> None:
    """Check ``path`` against the published sha256, else against (or into) checksums.sha256."""
    digest = file_sha256(path)
    relative = wf.path.relative_to(weights_dir).as_posix()
    if wf.sha256:
        if not digest.startswith(wf.sha256.lower()):
            raise FetchError(
                f"sha256 mismatch for {relative}: expected {wf.sha256}, got {digest}. "
                f"The file is corrupt or not the published one; it was not accepted ({path})."
            )
        return
    recorded = read_checksums(weights_dir).get(relative)
    if recorded is None:
        record_checksum(weights_dir, relative, digest)
        say(f"  no published sha256 for {relative}; recorded {digest} in {weights_dir / CHECKSUMS}")
    elif recorded != digest:
        raise FetchError(
            f"sha256 mismatch for {relative}: {weights_dir / CHECKSUMS} recorded {recorded} at the "
            f"first download, the file has {digest}. Delete the file and its line there, then fetch again."
        )


# ------------------------------------------------------------------------------------ downloads

def _offline_error(url: str, reason: str, profile: Profile, weights_dir: Path) -> FetchError:
    host = urllib.parse.urlsplit(url).hostname
    return FetchError(
        f"cannot reach {host} ({reason}) to download {url}. This machine has no internet access "
        f"(or a firewall blocks {host}): run `emotion-fetch {profile.name} --weights-dir DIR` on a machine "
        f"that has, copy DIR to {weights_dir} here (or point ${WEIGHTS_ENV} at it), and run again."
    )


def check_reachable(url: str) -> None:
    """Fail fast (one DNS lookup + TCP connect) instead of the hub client's minute of retries."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or urllib.request.getproxies().get(parts.scheme):
        return  # file:// needs no network; behind a proxy only the proxy can tell
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except socket.gaierror as e:
        raise ConnectionError(f"DNS lookup failed: {e.strerror or e}") from None
    except OSError as e:
        raise ConnectionError(f"no connection to port {port}: {e.strerror or e}") from None


def download_url(url: str, dest: Path) -> None:
    """Stream ``url`` (http(s) or file) to ``dest``."""
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=60) as source, open(dest, "wb") as out:
        total = int(source.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr,
                  disable=not sys.stderr.isatty()) as bar:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))


def download_hf(spec: str, dest: Path) -> None:
    """``org/repo/filename`` from the Hugging Face hub to ``dest``.

    The hub client open_clip itself uses, called directly: open_clip's wrapper silently swaps
    ``open_clip_pytorch_model.bin`` for the ``.safetensors`` twin, which would land under the
    wrong name.
    """
    from huggingface_hub import hf_hub_download

    repo, _, filename = spec.rpartition("/")
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".hub-") as cache:
        cached = Path(hf_hub_download(repo_id=repo, filename=filename, cache_dir=cache))
        shutil.move(str(cached.resolve()), dest)  # the hub cache links snapshots to blobs


def fetch_file(wf: WeightFile, profile: Profile, weights_dir: Path, say=print) -> str:
    """Make one weight file present and verified; returns what happened, for the summary."""
    if wf.path.is_file():
        verify(wf, wf.path, weights_dir, say)
        return "present, verified"
    if wf.resolved is not None:  # an installed copy (pip package data) serves
        if wf.sha256:
            verify(wf, wf.resolved, weights_dir, say)
        return f"installed at {wf.resolved}"
    url = wf.source
    try:
        check_reachable(url)
    except ConnectionError as e:
        raise _offline_error(url, str(e), profile, weights_dir) from None
    wf.path.parent.mkdir(parents=True, exist_ok=True)
    part = wf.path.with_name(wf.path.name + ".part")
    say(f"  downloading {url}")
    try:
        (download_hf if wf.hf_hub else download_url)(wf.hf_hub or url, part)
        verify(wf, part, weights_dir, say)
    except FetchError:
        part.unlink(missing_ok=True)
        raise
    except Exception as e:  # network, HTTP and hub errors: one line, no traceback
        part.unlink(missing_ok=True)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FetchError(f"download of {url} failed: {first}") from None
    os.replace(part, wf.path)
    return "downloaded, verified"


def fetch_profile(profile: Profile, weights_dir: Path, say=print) -> None:
    """Fetch and verify every downloadable file; then fail naming the ones nobody can download."""
    files = profile.weight_files(weights_dir)
    if not files:
        say(f"{profile.name}: needs no weight files" + (" (random-weight test profile)" if profile.test_only else ""))
        return
    if not any(f.downloadable for f in files) and all(f.present for f in files):
        say(f"{profile.name}: nothing to download; its weights come with a pip package:")
    else:
        say(f"{profile.name}: fetching {len(files)} file(s) into {weights_dir}")
    weights_dir.mkdir(parents=True, exist_ok=True)
    unobtainable = []
    for wf in files:
        if not (wf.present or wf.downloadable):
            unobtainable.append(wf)
            continue
        outcome = fetch_file(wf, profile, weights_dir, say)
        say(f"  {wf.role}: {wf.path.relative_to(weights_dir)}: {outcome}")
    if unobtainable:
        raise FetchError(f"{profile.name} also needs files that cannot be downloaded: " + "; ".join(
            f"{wf.role} {wf.path} ({wf.how_to_get or 'no source known'})" for wf in unobtainable
        ))


def print_list(weights_dir: Path, say=print) -> None:
    say(f"weights dir: {weights_dir}" + (f" (from ${WEIGHTS_ENV})" if os.environ.get(WEIGHTS_ENV) else ""))
    for profile in sorted(list_profiles().values(), key=lambda p: (-p.rank, p.name)):
        files = profile.weight_files(weights_dir)
        missing = profile.missing_files(weights_dir)
        state = "ready" if not missing else f"missing {len(missing)} of {len(files)} file(s)"
        tag = " [test only]" if profile.test_only else ""
        say(f"{profile.name:22s} {profile.kind:9s} rank {profile.rank:3d}  {state}{tag}")
        for f in files:
            where = f.resolved or f.path
            mark = "ok     " if f.present else "absent " if f.optional else "missing"
            say(f"    {mark} {f.role}: {where}  <- {f.source}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="emotion-fetch",
        description="Download and verify the weights of model profiles, for robots that run offline.",
    )
    parser.add_argument("profiles", nargs="*", metavar="PROFILE", help="profile name(s) to fetch")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help=f"where weights go (default: ${WEIGHTS_ENV} or {default_weights_dir()})")
    parser.add_argument("--list", action="store_true", help="list profiles and which weights are present")
    args = parser.parse_args(argv)
    weights_dir = (args.weights_dir or default_weights_dir()).expanduser().resolve()
    if not args.list and not args.profiles:
        parser.error("name a PROFILE to fetch, or --list")
    try:
        if args.list:
            print_list(weights_dir)
        for name in args.profiles:
            fetch_profile(get_profile(name), weights_dir)
    except (FetchError, UnknownProfileError, OSError, ValueError) as e:
        print(f"emotion-fetch: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("emotion-fetch: interrupted", file=sys.stderr)
        return 130
    in_dir = [f for n in args.profiles for f in get_profile(n).weight_files(weights_dir) if f.path.is_file()]
    if in_dir:
        print(
            f"\nDone. To run offline, copy {weights_dir} to the robot (same path, or anywhere and set\n"
            f"  export {WEIGHTS_ENV}=<that path>\n"
            f"), then start with the profile, e.g.\n"
            f"  ros2 launch emotion_perception head.launch.py profile:={args.profiles[0]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
