"""Per-track ring buffers of per-frame features, preallocated on the engine's device.

All tracks share one pool tensor per stream (``[capacity, window, dim]``); a track owns one slot
(row) of it and a write counter. Writing a frame for many tracks is one indexed store, reading
their windows is one gather: no Python lists of tensors and no allocation per frame. A released
slot goes back to the free list and is reused (its counter restarts at 0, so stale features are
never read). The pool doubles when more tracks are alive than it has slots.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch


class WindowBuffers:
    """Ring buffers of the last ``window`` feature vectors of each key (a track), per stream name.

    ``write(keys, face=..., scene=...)`` appends one vector per key to each named stream;
    ``windows(keys)`` returns the valid frames of each key in chronological order.
    """

    def __init__(self, window: int, device: torch.device | str, streams: Sequence[str], capacity: int = 8):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not streams:
            raise ValueError("WindowBuffers needs at least one stream name")
        self.window = window
        self.device = torch.device(device)
        self.streams = tuple(streams)
        self._capacity = max(1, capacity)
        self._pools: dict[str, torch.Tensor] = {}  # allocated at the first write (dim, dtype known)
        self._slot: dict[Hashable, int] = {}
        self._count: list[int] = [0] * self._capacity  # frames ever written to each slot
        self._free: list[int] = list(range(self._capacity - 1, -1, -1))

    def __len__(self) -> int:
        """Number of live buffers (tracks)."""
        return len(self._slot)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slot

    @property
    def capacity(self) -> int:
        return self._capacity

    def keys(self) -> list[Hashable]:
        return list(self._slot)

    def frames_used(self, key: Hashable) -> int:
        """How many valid frames the key's window holds (grows to ``window``, then stays)."""
        return min(self._count[self._slot[key]], self.window)

    def release(self, key: Hashable) -> bool:
        """Free the key's slot; returns False if it had none."""
        slot = self._slot.pop(key, None)
        if slot is None:
            return False
        self._count[slot] = 0
        self._free.append(slot)
        return True

    def clear(self) -> None:
        for key in list(self._slot):
            self.release(key)

    def write(self, keys: Sequence[Hashable], **features: torch.Tensor) -> None:
        """Append ``features[name][i]`` as the newest frame of ``keys[i]`` for every stream."""
        if set(features) != set(self.streams):
            raise ValueError(f"write needs features for exactly {self.streams}, got {tuple(features)}")
        if len(set(keys)) != len(keys):
            raise ValueError("write got the same key twice; one frame per key per call")
        for name, feats in features.items():
            if feats.dim() != 2 or feats.shape[0] != len(keys):
                raise ValueError(f"{name} features must be [{len(keys)}, dim], got {tuple(feats.shape)}")
        if not keys:
            return
        slots = [self._slot_of(key) for key in keys]
        positions = [self._count[s] % self.window for s in slots]
        slot_idx = torch.tensor(slots, device=self.device)
        pos_idx = torch.tensor(positions, device=self.device)
        for name, feats in features.items():
            pool = self._pool(name, feats)
            pool.index_put_((slot_idx, pos_idx), feats.to(pool.dtype))
        for s in slots:
            self._count[s] += 1

    def windows(self, keys: Sequence[Hashable]) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[int]]:
        """Windows of ``keys``: ({name: [B, T, dim]}, mask [B, T] bool, frames_used per key).

        Frames are oldest first and left-aligned (mask True for the first ``frames_used``);
        T is the largest ``frames_used`` among the keys, so young tracks cost less.
        """
        if not keys:
            raise ValueError("windows needs at least one key")
        slots = [self._slot[key] for key in keys]
        used = [min(self._count[s], self.window) for s in slots]
        t = max(used)
        # oldest valid entry of a slot with n valid frames out of c written is at (c - n) % window
        starts = torch.tensor([(self._count[s] - n) % self.window for s, n in zip(slots, used)])
        steps = torch.arange(t)
        positions = (starts[:, None] + steps[None, :]) % self.window
        mask = steps[None, :] < torch.tensor(used)[:, None]
        slot_idx = torch.tensor(slots)[:, None].expand(-1, t)
        slot_idx, positions = slot_idx.to(self.device), positions.to(self.device)
        out = {name: pool[slot_idx, positions] for name, pool in self._pools.items()}
        return out, mask.to(self.device), used

    def _slot_of(self, key: Hashable) -> int:
        slot = self._slot.get(key)
        if slot is None:
            if not self._free:
                self._grow()
            slot = self._free.pop()  # its counter is 0: fresh, released or grown
            self._slot[key] = slot
        return slot

    def _grow(self) -> None:
        old = self._capacity
        self._capacity = old * 2
        self._count.extend([0] * old)
        self._free.extend(range(self._capacity - 1, old - 1, -1))
        for name, pool in self._pools.items():
            extra = torch.zeros((old, *pool.shape[1:]), dtype=pool.dtype, device=pool.device)
            self._pools[name] = torch.cat([pool, extra])

    def _pool(self, name: str, feats: torch.Tensor) -> torch.Tensor:
        pool = self._pools.get(name)
        if pool is None:
            # zeros, not empty: masked-out entries are multiplied by 0 and must not be NaN
            pool = torch.zeros((self._capacity, self.window, feats.shape[1]), dtype=feats.dtype, device=self.device)
            self._pools[name] = pool
        elif pool.shape[2] != feats.shape[1]:
            raise ValueError(f"{name} features changed size: {feats.shape[1]} != {pool.shape[2]}")
        return pool
