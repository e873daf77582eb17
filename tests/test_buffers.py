"""WindowBuffers (engine/buffers.py) against hand-worked windows: slot reuse, growth, dtype and
device placement, and its errors."""
from __future__ import annotations

import pytest
import torch

from emotion_perception.engine.buffers import WindowBuffers


def _write(buf, step_by_key: dict):
    buf.write(list(step_by_key), face=torch.tensor([[float(v)] for v in step_by_key.values()]))


def test_each_new_key_starts_an_empty_window_also_in_reused_and_grown_slots():
    buf = WindowBuffers(window=2, device="cpu", streams=("face",), capacity=1)
    assert buf.capacity == 1 and len(buf) == 0
    _write(buf, {"a": 1})
    assert buf.frames_used("a") == 1 and "a" in buf and "b" not in buf
    _write(buf, {"a": 2, "b": 20})  # b: a grown slot
    _write(buf, {"a": 3, "b": 30, "c": 300})  # c: grown again, 1 -> 2 -> 4 slots
    assert buf.capacity == 4 and buf.keys() == ["a", "b", "c"]
    windows, mask, used = buf.windows(["c", "b", "a"])
    assert used == [1, 2, 2]
    assert windows["face"][:, :, 0].tolist() == [[300.0, 0.0], [20.0, 30.0], [2.0, 3.0]]
    assert mask.tolist() == [[True, False], [True, True], [True, True]]
    buf.release("b")
    _write(buf, {"d": 4})  # b's slot, counter back at 0
    assert buf.frames_used("d") == 1
    windows, _, _ = buf.windows(["d"])
    assert windows["face"][:, :, 0].tolist() == [[4.0]]
    buf.clear()
    assert len(buf) == 0 and buf.keys() == [] and "a" not in buf
    _write(buf, {"e": 5})
    assert buf.frames_used("e") == 1


def test_a_pool_fills_every_slot_before_doubling():
    buf = WindowBuffers(window=1, device="cpu", streams=("face",))
    assert buf.capacity == 8  # the documented default
    _write(buf, {k: k for k in range(8)})
    assert buf.capacity == 8
    _write(buf, {8: 8})
    assert buf.capacity == 16
    _write(buf, {k: k for k in range(9, 16)})
    assert buf.capacity == 16
    _write(buf, {16: 16})
    assert buf.capacity == 32
    windows, _, used = buf.windows(list(range(17)))
    assert used == [1] * 17 and windows["face"][:, 0, 0].tolist() == [float(k) for k in range(17)]
    assert WindowBuffers(window=1, device="cpu", streams=("face",), capacity=0).capacity == 1


def test_features_keep_the_first_writes_dtype_also_after_growth():
    buf = WindowBuffers(window=2, device="cpu", streams=("face",), capacity=1)
    buf.write(["a"], face=torch.tensor([[0.5]], dtype=torch.float16))
    buf.write(["a", "b"], face=torch.tensor([[0.25], [1.5]], dtype=torch.float64))  # stored as float16
    windows, _, _ = buf.windows(["a", "b"])
    assert windows["face"].dtype == torch.float16
    assert windows["face"][:, :, 0].tolist() == [[0.5, 0.25], [1.5, 0.0]]


def test_everything_lives_on_the_buffers_device():
    """The meta device stands in for a GPU: a tensor left on the CPU would show up (or fail to mix)."""
    buf = WindowBuffers(window=2, device="meta", streams=("face", "scene"), capacity=1)
    for keys in (["a"], ["a", "b"], ["a", "b", "c"]):  # grows twice
        buf.write(keys, face=torch.zeros(len(keys), 4, device="meta"), scene=torch.zeros(len(keys), 3, device="meta"))
    windows, mask, used = buf.windows(["a", "c"])
    assert used == [2, 1]
    assert windows["face"].device.type == windows["scene"].device.type == mask.device.type == "meta"
    assert windows["face"].shape == (2, 2, 4) and windows["scene"].shape == (2, 2, 3)


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"^window must be >= 1, got 0$"):
        WindowBuffers(window=0, device="cpu", streams=("face",))
    assert WindowBuffers(window=1, device="cpu", streams=("face",)).window == 1
    with pytest.raises(ValueError, match=r"^WindowBuffers needs at least one stream name$"):
        WindowBuffers(window=2, device="cpu", streams=())
    buf = WindowBuffers(window=2, device="cpu", streams=("face",))
    with pytest.raises(ValueError, match=r"^write got the same key twice; one frame per key per call$"):
        buf.write(["a", "a"], face=torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"^face features must be \[2, dim\], got \(2,\)$"):
        buf.write(["a", "b"], face=torch.zeros(2))
    with pytest.raises(ValueError, match=r"^face features must be \[2, dim\], got \(3, 4\)$"):
        buf.write(["a", "b"], face=torch.zeros(3, 4))
    buf.write(["a"], face=torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"^face features changed size: 5 != 4$"):
        buf.write(["a"], face=torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"^windows needs at least one key$"):
        buf.windows([])
