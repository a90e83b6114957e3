"""Load YAML, validate it, and report every problem as FILE:LINE: key.path: got VALUE, expected ..."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sync.profile import Profile, bundled_config, profile_path

from .devices import register_map_path
from .errors import ConfigError, Problem
from .model import Config, cross_problems
from .registers import RegisterMapConfig

ModelT = TypeVar("ModelT", bound=BaseModel)
# The register maps this project ships, for configs that name one without a local copy.
BUNDLED_MAPS = bundled_config() / "scales"


def load_config(path: str | Path) -> Config:
    path = Path(path)
    name = str(path)
    data, lines = _read_yaml(path)
    _attach_register_maps(data, path.parent, lines, name)
    _attach_profile(data, path.parent, lines, name)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(name, err, data, lines) for err in exc.errors()]) from exc
    problems = [
        Problem(name, _nearest_line(path, lines), ".".join(str(k) for k in path), got, expected)
        for path, got, expected in cross_problems(config)
    ]
    if problems:
        raise ConfigError(problems)
    return config


def load_register_map(path: Path) -> RegisterMapConfig:
    return _load_model(path, RegisterMapConfig)


def load_profile_file(path: Path) -> Profile:
    return _load_model(path, Profile)


def _load_model(path: Path, model: type[ModelT]) -> ModelT:
    data, lines = _read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(str(path), err, data, lines) for err in exc.errors()]) from exc


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(name, 0, "(file)", repr(str(exc)), "a readable YAML file")]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise ConfigError([Problem(name, line, "(file)", str(exc).splitlines()[0], "valid YAML")]) from exc
    if not isinstance(data, dict):
        raise ConfigError([Problem(name, 1, "(file)", _show(data), "a mapping of sections")])
    lines: dict[tuple[Any, ...], int] = {}
    _index_lines(node, (), lines)
    return data, lines


def _attach_register_maps(data: dict[str, Any], config_dir: Path, lines: dict[tuple[Any, ...], int], name: str) -> None:
    """Replace each scale's `register_map: NAME` by the map it names, so validation sees it whole."""
    lanes = data.get("lanes")
    scales: list[tuple[tuple[Any, ...], Any]] = [
        (("lanes", index, "scale"), lane.get("scale"))
        for index, lane in enumerate(lanes if isinstance(lanes, list) else [])
        if isinstance(lane, dict)
    ]
    checks = data.get("checks")
    if isinstance(checks, dict):
        scales.append((("checks", "check_scale"), checks.get("check_scale")))
    for where, scale in scales:
        if isinstance(scale, dict) and "register_map" in scale and "registers" in scale:
            key = (*where, "register_map")
            raise ConfigError(
                [Problem(name, _nearest_line(key, lines), ".".join(map(str, key)), repr(scale["register_map"]),
                         "register_map or registers, not both (which map is meant?)")]
            )
        if not isinstance(scale, dict) or not isinstance(scale.get("register_map"), str):
            continue
        map_path = register_map_path(scale["register_map"], config_dir, BUNDLED_MAPS)
        if not map_path.exists():
            key = where + ("register_map",)
            raise ConfigError(
                [Problem(name, _nearest_line(key, lines), ".".join(map(str, key)), repr(scale["register_map"]),
                         f"a register map file ({map_path} does not exist)")]
            )
        scale["registers"] = load_register_map(map_path).model_dump()


def _attach_profile(data: dict[str, Any], config_dir: Path, lines: dict[tuple[Any, ...], int], name: str) -> None:
    """Replace `city.profile: NAME` by the profile it names; its problems name its own file."""
    city = data.get("city")
    if not isinstance(city, dict) or not isinstance(city.get("profile"), str):
        return
    path = profile_path(city["profile"], config_dir)
    if not path.exists():
        key = ("city", "profile")
        raise ConfigError([Problem(name, _nearest_line(key, lines), "city.profile", repr(city["profile"]),
                                   f"a profile file ({path} does not exist)")])
    city["profile"] = load_profile_file(path).model_dump()


def _problem(name: str, err: Any, data: Any, lines: dict[tuple[Any, ...], int]) -> Problem:
    loc = tuple(err["loc"])
    # Pydantic adds the tag of a union member to the location; keep only real keys and indexes.
    # A missing key is, by definition, not in the data: keep it as the last part of the path.
    keys = tuple(part for part in loc if _resolves(data, loc, part) or (err["type"] == "missing" and part is loc[-1]))
    line = _nearest_line(keys, lines)
    dotted = ".".join(str(k) for k in keys) or "(top level)"
    if err["type"] == "extra_forbidden":
        return Problem(name, line, dotted, "an unknown key", "one of the documented keys (typo?)")
    if err["type"] == "union_tag_invalid":
        ctx = err["ctx"]
        key = ctx["discriminator"].strip("'")
        where = f"{dotted}.{key}"
        return Problem(name, _nearest_line(keys + (key,), lines), where, repr(ctx["tag"]), f"one of {ctx['expected_tags']}")
    if err["type"] == "missing":
        return Problem(name, line, dotted, "nothing", "this required key")
    expected = err["msg"].removeprefix("Value error, ")
    return Problem(name, line, dotted, _show(err.get("input")), expected)


def _resolves(data: Any, loc: tuple[Any, ...], part: Any) -> bool:
    """Whether `part` of an error location is a real key or index in the data (a union's tag is not)."""
    node = data
    for item in loc:
        if isinstance(node, dict) and item in node:
            found = True
            child = node[item]
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            found = True
            child = node[item]
        else:
            found, child = False, node
        if item == part:
            return found
        node = child
    return True


def _nearest_line(keys: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    for end in range(len(keys), -1, -1):
        if keys[:end] in lines:
            return lines[keys[:end]]
    return 1


def _index_lines(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = path + (key.value,)
            lines[child] = key.start_mark.line + 1
            _index_lines(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, path + (index,), lines)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
