"""Parse .msg/.srv files the way a ROS build does: rosidl_adapter -> .idl -> rosidl_parser.

Runs under Debian's python3 (package python3-rosidl), not the project's virtualenv, so the tests
call it as a subprocess. The adapter prints progress lines; the LAST stdout line is the result,
{"<file>": {"<struct>": [[member, type], ...]}} as JSON. Exits 1 with the parser's error message on
the first file that does not parse.
"""
import json
import sys
import tempfile
from pathlib import Path

from rosidl_adapter.msg import convert_msg_to_idl
from rosidl_adapter.srv import convert_srv_to_idl
from rosidl_parser.definition import (
    AbstractNestedType,
    Array,
    IdlLocator,
    Message,
    NamespacedType,
    Service,
)
from rosidl_parser.parser import parse_idl_file


def type_name(t) -> str:
    """A readable spelling of a rosidl_parser type: uint8, float[7], sensor_msgs/msg/RegionOfInterest."""
    if isinstance(t, AbstractNestedType):
        inner = type_name(t.value_type)
        return f"{inner}[{t.size}]" if isinstance(t, Array) else f"{inner}[]"
    if isinstance(t, NamespacedType):
        return "/".join([*t.namespaces, t.name])
    return getattr(t, "typename", type(t).__name__)


def describe(message):
    return [[m.name, type_name(m.type)] for m in message.structure.members]


def main(package_dir: str, package_name: str, files: list[str]) -> int:
    result = {}
    with tempfile.TemporaryDirectory() as out:
        for rel in files:
            rel_path = Path(rel)
            convert = convert_msg_to_idl if rel_path.suffix == ".msg" else convert_srv_to_idl
            try:
                idl = convert(Path(package_dir).absolute(), package_name, rel_path, Path(out))
                content = parse_idl_file(IdlLocator(Path(out), idl.name)).content
            except Exception as exc:  # the parser raises many exception types; report which file
                print(f"{rel}: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
            parsed = {}
            for element in content.elements:
                if isinstance(element, Message):
                    parsed[element.structure.namespaced_type.name] = describe(element)
                elif isinstance(element, Service):
                    parsed["request"] = describe(element.request_message)
                    parsed["response"] = describe(element.response_message)
            result[rel] = parsed
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
