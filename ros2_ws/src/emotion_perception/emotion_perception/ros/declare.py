"""One way for every node to declare its parameters: typed, described and ranged ROS parameters
from a ROS-free table of ``Param`` (parameters.py), and their values read back.

A ``Param`` whose default is None ("not set", settings.py) is declared with its type and no
value; reading it gives None until a YAML file, a launch argument or ``ros2 param set`` sets it.
"""
from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

from ..parameters import Param

_DESCRIPTOR_TYPES = {
    "bool": ParameterType.PARAMETER_BOOL,
    "int": ParameterType.PARAMETER_INTEGER,
    "float": ParameterType.PARAMETER_DOUBLE,
    "str": ParameterType.PARAMETER_STRING,
    "str_list": ParameterType.PARAMETER_STRING_ARRAY,
}
_PARAMETER_TYPES = {
    "bool": Parameter.Type.BOOL,
    "int": Parameter.Type.INTEGER,
    "float": Parameter.Type.DOUBLE,
    "str": Parameter.Type.STRING,
    "str_list": Parameter.Type.STRING_ARRAY,
}


def descriptor(p: Param, read_only: bool = False) -> ParameterDescriptor:
    """ParameterDescriptor of a table entry: type, description (unit, when it applies, what "not
    set" means), numeric range, allowed values."""
    text = p.description + (f" [{p.unit}]" if p.unit else "")
    if p.unset:
        text += f"; not set: {p.unset}"
    if p.at_configure and not read_only:
        text += " (applied at configure)"
    d = ParameterDescriptor(name=p.name, type=_DESCRIPTOR_TYPES[p.kind], description=text, read_only=read_only)
    if p.kind == "float" and p.low is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(p.low), to_value=float(p.high), step=0.0)]
    elif p.kind == "int" and p.low is not None:
        d.integer_range = [IntegerRange(from_value=int(p.low), to_value=int(p.high), step=1)]
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(repr(c) for c in p.choices)
    return d


def declare(node, table: tuple[Param, ...], read_only: bool = False) -> None:
    """Declare every parameter of ``table`` on ``node`` (not-set ones typed, without a value)."""
    for p in table:
        node.declare_parameter(p.name, p.default if p.default is not None else _PARAMETER_TYPES[p.kind],
                               descriptor(p, read_only))


def read(node, table: tuple[Param, ...]) -> dict:
    """{name: value} of ``table``'s parameters on ``node``; None for one that is not set."""
    values = {}
    for p in table:
        try:
            values[p.name] = node.get_parameter(p.name).value
        except ParameterUninitializedException:
            values[p.name] = None
    return values
