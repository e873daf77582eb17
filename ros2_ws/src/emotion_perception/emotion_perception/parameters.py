"""Node parameters as plain data: one ``Param`` type for every node's ROS-free parameter table.

Each node declares its parameters from a table of these (with descriptions and ranges), its YAML
file repeats the defaults, and CI tests compare the two without rclpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Value = Union[bool, int, float, str, list]


@dataclass(frozen=True)
class Param:
    """One ROS parameter. ``low``/``high`` bound numbers (inclusive); ``choices`` bound strings."""

    name: str
    default: Value
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    at_configure: bool = False  # read at configure: a change applies after cleanup + configure

    @property
    def kind(self) -> str:
        """bool, int, float, str or str_list (ROS 2 parameter types we use)."""
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        if isinstance(self.default, float):
            return "float"
        if isinstance(self.default, str):
            return "str"
        if isinstance(self.default, list) and all(isinstance(v, str) for v in self.default):
            return "str_list"
        raise TypeError(f"parameter {self.name}: unsupported default {self.default!r}")

    def check(self, value: Value) -> Value:
        """Return ``value`` if it fits the type, range and choices; raise ValueError otherwise."""
        kind = self.kind
        ok_type = {
            "bool": lambda v: isinstance(v, bool),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "str": lambda v: isinstance(v, str),
            "str_list": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
        }[kind]
        if not ok_type(value):
            raise ValueError(f"parameter {self.name} must be a {kind}, got {value!r}")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ValueError(f"parameter {self.name}={value} is outside [{self.low}, {self.high}]")
        if self.choices and value not in self.choices:
            raise ValueError(f"parameter {self.name}={value!r} must be one of {', '.join(self.choices)}")
        return float(value) if kind == "float" else list(value) if kind == "str_list" else value
