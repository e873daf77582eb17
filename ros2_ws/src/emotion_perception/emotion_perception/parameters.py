"""Settings and node parameters as plain data: one ``Param`` type for every ROS-free table.

The engine's settings (settings.py) and each node's parameters are tables of these; the nodes
declare them through one helper (ros/declare.py) as typed, described, ranged ROS parameters, the
YAML files repeat the defaults, and CI tests compare them without rclpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Value = Union[bool, int, float, str, list]


@dataclass(frozen=True)
class Param:
    """One setting or ROS parameter. ``low``/``high`` bound numbers (inclusive); ``choices`` bound
    strings. ``default`` None means "not set" (then ``type`` names the type and ``unset`` says what
    applies instead; ``engine_default`` is EngineConfig's value when it is built directly)."""

    name: str
    default: Value | None
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    at_configure: bool = False  # read at configure: a change applies after cleanup + configure
    type: str = ""  # bool, int, float, str or str_list; needed only when default is None
    unit: str = ""
    unset: str = ""  # what applies when the setting is not set (default None)
    engine_default: Value | None = None

    def __post_init__(self):
        if (self.default is None) != bool(self.unset):
            raise ValueError(f"parameter {self.name}: a default of None needs `unset` (and only it)")

    @property
    def kind(self) -> str:
        """bool, int, float, str or str_list (ROS 2 parameter types we use)."""
        if self.type:
            return self.type
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

    @property
    def fallback(self) -> Value:
        """The value used when nothing sets this one: the default, else ``engine_default``."""
        return self.default if self.default is not None else self.engine_default

    def check(self, value: Value | None) -> Value | None:
        """Return ``value`` if it fits the type, range and choices (None: only where "not set" is
        allowed); raise ValueError otherwise."""
        if value is None and self.unset:
            return None
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

    def parse(self, text: str) -> Value | None:
        """A value from text (a launch argument, ``--set``), checked; empty text is "not set"."""
        text = text.strip()
        if text == "" and self.unset:
            return None
        kind = self.kind
        try:
            if kind == "bool":
                if text.lower() not in ("true", "false"):
                    raise ValueError
                value = text.lower() == "true"
            elif kind == "int":
                value = int(text)
            elif kind == "float":
                value = float(text)
            elif kind == "str_list":
                value = [t.strip().strip("'\"") for t in text.strip("[]").split(",") if t.strip()]
            else:
                value = text
        except ValueError:
            raise ValueError(f"parameter {self.name} takes a {'true or false' if kind == 'bool' else kind}, "
                             f"got {text!r}") from None
        return self.check(value)

    def summary(self) -> str:
        """``name (type, range, unit): description; default or what not set means``."""
        facts = [self.kind]
        if self.low is not None:
            facts.append(f"{self.low:g}..{self.high:g}")
        if self.choices:
            facts.append("|".join(self.choices))
        if self.unit:
            facts.append(self.unit)
        default = f"not set: {self.unset}" if self.default is None else f"default {self.default!r}"
        return f"{self.name} ({', '.join(facts)}): {self.description}; {default}"
