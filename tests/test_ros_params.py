"""The perception node's parameters: one table, config/head.yaml agrees, the node declares from it."""
from __future__ import annotations

import ast

import pytest
import yaml

from conftest import PACKAGE_DIR
from emotion_perception.ros.diagnostics import Thresholds
from emotion_perception.ros.params import BY_NAME, DEFAULTS, PARAMETERS, engine_options, validate

HEAD_YAML = PACKAGE_DIR / "config" / "head.yaml"
NODE_SOURCE = PACKAGE_DIR / "emotion_perception" / "ros" / "perception_node.py"
ISSUE_PARAMETERS = {  # what the issue and the README promise
    "profile", "device", "precision", "window", "scene_interval", "detector", "face_margin",
    "min_face_score", "max_faces", "image_topics", "image_transport", "reliable_qos", "publish_debug_image",
    "publish_hri", "weights_dir", "diag_min_rate_warn_hz", "diag_latency_warn_ms", "diag_drop_warn_ratio",
}


def head_yaml_parameters() -> dict:
    data = yaml.safe_load(HEAD_YAML.read_text())
    assert list(data) == ["/**/perception_node"], "one node section, namespace-agnostic"
    return data["/**/perception_node"]["ros__parameters"]


def test_yaml_sets_every_parameter_with_a_default_and_names_the_others():
    """head.yaml gives every parameter that has a default that default, and lists each "not set"
    one as a commented-out line (the one spelling of "not set": absent)."""
    values = head_yaml_parameters()
    assert set(values) == {n for n, v in DEFAULTS.items() if v is not None}
    for name, value in values.items():
        default = DEFAULTS[name]
        assert type(value) is type(default), f"{name}: yaml {value!r} vs table {default!r} (ROS types differ)"
        assert value == default, name
    commented = {line.split("#", 1)[1].split(":")[0].strip() for line in HEAD_YAML.read_text().splitlines()
                 if line.startswith("    # ") and ":" in line and "---" not in line}
    assert commented == {n for n, v in DEFAULTS.items() if v is None}


def test_table_is_complete_and_consistent():
    assert ISSUE_PARAMETERS <= set(BY_NAME)
    assert len(BY_NAME) == len(PARAMETERS)
    for p in PARAMETERS:
        assert len(p.description) > 15, p.name
        p.check(p.default)  # every default is valid
        if p.kind in ("int", "float"):
            assert p.low is not None and p.high is not None and p.low <= p.high, f"{p.name} needs a range"
    assert BY_NAME["image_transport"].choices == ("raw", "compressed")
    assert BY_NAME["image_topics"].kind == "str_list"
    # the diagnostics thresholds come from the diag_* parameters, all of them
    assert Thresholds.from_params(DEFAULTS) == Thresholds()
    assert {f"diag_{f}" for f in Thresholds.__dataclass_fields__} == {n for n in BY_NAME if n.startswith("diag_")}


@pytest.mark.parametrize("name, value, message", [
    ("window", -1, "outside"),
    ("face_margin", 1.5, "outside"),
    ("face_margin", "0.2", "must be a float"),
    ("reliable_qos", 1, "must be a bool"),
    ("window", 2.0, "must be a int"),
    ("image_transport", "theora", "must be one of"),
    ("precision", "fp8", "must be one of"),
    ("image_topics", "image", "must be a str_list"),
])
def test_bad_values_are_rejected(name, value, message):
    with pytest.raises(ValueError, match=message):
        validate({**DEFAULTS, name: value})


def test_validate_normalises_and_rejects_unknown_and_empty():
    out = validate({**DEFAULTS, "face_margin": 0, "image_topics": ("a", "b")})
    assert out["face_margin"] == 0.0 and isinstance(out["face_margin"], float)
    assert out["image_topics"] == ["a", "b"]
    with pytest.raises(ValueError, match="unknown parameters: colour"):
        validate({**DEFAULTS, "colour": "red"})
    with pytest.raises(ValueError, match="at least one topic"):
        validate({**DEFAULTS, "image_topics": []})


def test_engine_options_fit_create_engine():
    from emotion_perception.engine import EngineConfig

    import inspect

    from emotion_perception.pipeline import create_engine

    opts = engine_options(validate({**DEFAULTS, "window": 8, "scene_interval": 2}))
    named = {n for n, p in inspect.signature(create_engine).parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD}
    config_fields = set(opts) - named
    assert config_fields <= set(EngineConfig.__dataclass_fields__)
    EngineConfig(**{k: opts[k] for k in config_fields})  # valid values


def test_engine_options_leave_profile_defaults_alone():
    opts = engine_options(validate(dict(DEFAULTS)))
    assert opts["profile"] == "auto" and opts["max_faces"] == 8 and opts["smoothing"] == "ema"
    assert not {"window", "scene_interval", "face_margin", "face_square", "face_shift", "detect_interval_s",
                "threads", "precision", "detector", "weights_dir", "min_face_score"} & set(opts)
    assert not {"image_topics", "publish_hri", "diag_stale_s"} & set(opts), "node parameters stay in the node"
    tuned = engine_options(validate({**DEFAULTS, "face_margin": 0.1, "min_hits": 3}))
    assert (tuned["face_margin"], tuned["min_hits"]) == (0.1, 3) and "detect_interval_s" not in tuned
    every_frame = engine_options(validate({**DEFAULTS, "detect_interval_s": 0.0}))
    assert every_frame["detect_interval_s"] == 0.0  # 0 is a value (search every frame), not "the profile's"
    custom = engine_options(validate({**DEFAULTS, "profile": "lite-fer2013", "detector": "opencv",
                                      "precision": "fp16", "window": 8, "weights_dir": "/w", "threads": 2}))
    assert custom["detector"] == "opencv" and custom["precision"] == "fp16" and custom["threads"] == 2
    assert custom["window"] == 8 and custom["weights_dir"] == "/w" and "scene_interval" not in custom


# --- the node declares from the table, nothing ad hoc (checked on its source: no rclpy here) ---

def _calls(tree, method):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == method]


def test_node_declares_every_parameter_from_the_table():
    """The node declares and reads its parameters through the shared helper (ros/declare.py) from
    params.PARAMETERS, nothing ad hoc; so do the LLM bridge and eval nodes from theirs."""
    for node, table in (("perception_node", "PARAMETERS"), ("llm_bridge_node", "PARAMETERS"),
                        ("eval_node", "PARAMETERS")):
        tree = ast.parse((NODE_SOURCE.parent / f"{node}.py").read_text())
        assert not _calls(tree, "declare_parameter") and not _calls(tree, "declare_parameters"), node
        calls = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", None) in ("declare", "read")]
        assert any(c.startswith(f"declare(self, {table}") for c in calls), node
        assert any(c == f"read(self, {table})" for c in calls), node


def test_node_reads_only_table_parameters():
    tree = ast.parse(NODE_SOURCE.read_text())
    literal_reads = [c.args[0].value for c in _calls(tree, "get_parameter") if isinstance(c.args[0], ast.Constant)]
    subscripts = [n.slice.value for n in ast.walk(tree) if isinstance(n, ast.Subscript)
                  and ast.unparse(n.value) == "self._values" and isinstance(n.slice, ast.Constant)]
    assert subscripts, "the node reads its validated values"
    for name in literal_reads + subscripts:
        assert name in BY_NAME, f"the node uses parameter {name!r} that the table does not declare"

