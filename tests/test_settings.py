"""One table per setting (settings.py), reachable from every door: the engine, create_engine, the
perception node's parameters, head.yaml (tests/test_ros_params.py), the launch file
(tests/test_launch.py), the CLI and a profile. A setting added to one place only fails here."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from emotion_perception.cli import ENGINE_OPTIONS, build_parser, parse_settings
from emotion_perception.engine import EngineConfig
from emotion_perception.engine.device import PRECISIONS
from emotion_perception.faces.detectors import DETECTORS
from emotion_perception.models.registry import OWN_KEY_SETTINGS, Profile
from emotion_perception.parameters import Param
from emotion_perception.pipeline import create_engine
from emotion_perception.ros.params import NODE_PARAMETERS, PARAMETERS
from emotion_perception.settings import ENGINE_SETTINGS, PIPELINE_SETTINGS, SETTINGS, SETTINGS_BY_NAME


def test_every_row_is_complete():
    assert len(SETTINGS_BY_NAME) == len(SETTINGS), "one row per name"
    for p in SETTINGS:
        assert len(p.description) > 15, p.name
        assert p.kind in ("bool", "int", "float", "str"), p.name
        if p.kind in ("int", "float"):
            assert p.low is not None and p.high is not None and p.low <= p.high, f"{p.name} needs a range"
        p.check(p.default)
        if p.default is None:  # "not set": says what applies instead
            assert len(p.unset) > 5, p.name
        if p in ENGINE_SETTINGS:
            p.check(p.fallback)


def test_engine_config_is_the_table():
    fields = dataclasses.fields(EngineConfig)
    assert [f.name for f in fields] == [p.name for p in ENGINE_SETTINGS]
    assert {f.name: f.default for f in fields} == {p.name: p.fallback for p in ENGINE_SETTINGS}
    assert {f.name: f.type for f in fields} == {p.name: {"bool": bool, "int": int, "float": float, "str": str}[p.kind]
                                                for p in ENGINE_SETTINGS}


@pytest.mark.parametrize("p", [p for p in ENGINE_SETTINGS if p.low is not None], ids=lambda p: p.name)
def test_engine_config_checks_the_table_ranges(p):
    assert getattr(EngineConfig(**{p.name: p.high}), p.name) == p.high
    below = p.low - (1 if p.kind == "int" else 0.01)
    with pytest.raises(ValueError, match=rf"^EngineConfig\.{p.name} must be >= {p.low:g}, got "):
        EngineConfig(**{p.name: below})


def test_choices_are_the_implementations():
    assert SETTINGS_BY_NAME["detector"].choices == tuple(DETECTORS)
    assert set(SETTINGS_BY_NAME["precision"].choices) == set(PRECISIONS)
    with pytest.raises(ValueError, match="EngineConfig.smoothing must be one of"):
        EngineConfig(smoothing="median")


def test_create_engine_takes_every_setting_by_its_name():
    named = {n for n, a in inspect.signature(create_engine).parameters.items() if a.kind is a.POSITIONAL_OR_KEYWORD}
    assert named == {p.name for p in PIPELINE_SETTINGS} | {"device", "precision", "threads"}
    # the rest reach EngineConfig through **config_overrides under the same names
    assert {p.name for p in ENGINE_SETTINGS} - named == {f.name for f in dataclasses.fields(EngineConfig)} - named


def test_the_node_has_every_setting_and_no_rename():
    names = [p.name for p in PARAMETERS]
    assert len(set(names)) == len(names)
    assert [p for p in PARAMETERS if p.name in SETTINGS_BY_NAME] == list(SETTINGS)
    assert not {p.name for p in NODE_PARAMETERS} & set(SETTINGS_BY_NAME)


def _valid_text(p: Param) -> str:
    if p.choices:
        return p.choices[-1]
    if p.kind == "bool":
        return "false"
    return {"int": str(int(p.high)), "float": str(p.high)}[p.kind] if p.high is not None else "x"


def test_the_cli_reaches_every_setting():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps subparsers here
    for command in ("run", "eval-set"):
        options = {o for a in commands[command]._actions for o in a.option_strings}
        assert {f"--{n.replace('_', '-')}" for n in ENGINE_OPTIONS} | {"--min-face-score", "--set"} <= options
    by_set = {p.name for p in ENGINE_SETTINGS} - set(ENGINE_OPTIONS)
    assert {p.name for p in SETTINGS} == by_set | set(ENGINE_OPTIONS) | {"min_face_score"}
    for name in by_set:
        p = SETTINGS_BY_NAME[name]
        assert parse_settings([f"{name}={_valid_text(p)}"]) == {name: p.parse(_valid_text(p))}
    help_text = commands["run"].format_help()
    assert all(name in help_text for name in by_set), "--set's help lists every setting"


@pytest.mark.parametrize("pair, message", [
    ("window=0", r"--set parameter window=0 is outside \[1, 128\]"),
    ("face_square=yes", "face_square takes a true or false"),
    ("smoothing=median", "must be one of none, ema, hysteresis"),
    ("max_faces=2.5", "max_faces takes a int"),
    ("no_such_field=1", "expected NAME=VALUE with NAME one of"),
])
def test_the_cli_refuses_bad_settings_with_the_table(pair, message):
    with pytest.raises(ValueError, match=message):
        parse_settings([pair])


def test_cli_options_parse_with_the_table():
    args = build_parser().parse_args(["run", "in.mcap", "--threads", "2", "--precision", "bf16"])
    assert (args.threads, args.precision, args.detector) == (2, "bf16", None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "in.mcap", "--precision", "fp8"])


def test_a_profile_reaches_every_engine_setting_but_the_device(tmp_path):
    settable = {p.name for p in ENGINE_SETTINGS if p.name not in OWN_KEY_SETTINGS}
    assert settable | OWN_KEY_SETTINGS == {p.name for p in ENGINE_SETTINGS}
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nkind: lite\nengine: {smoothing: hysteresis, min_hits: 3}\n")
    assert Profile.from_yaml(path).engine == {"smoothing": "hysteresis", "min_hits": 3}
    for bad, message in (("{window: 8}", "not settable there"), ("{min_hits: 0}", "outside")):
        path.write_text(f"name: p\nkind: lite\nengine: {bad}\n")
        with pytest.raises(ValueError, match=message):
            Profile.from_yaml(path)


def test_not_set_has_one_spelling():
    """None, and nothing else: no -1, 0 or "" stands for "the profile's"."""
    for p in PARAMETERS:
        if p.default is not None and p.kind in ("int", "float"):
            assert p.low is not None and p.default >= p.low, p.name
        if p.default == "":
            assert not p.choices, f"{p.name}: empty string as a choice"
    for p in SETTINGS:
        assert p.parse("") is None if p.default is None else True
