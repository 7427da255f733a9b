"""Strict TOML -> frozen dataclass loading.

Every section is a frozen dataclass (``stream.config.sections``). The loader walks the dataclass
fields, checks each TOML value against the field's type annotation and refuses unknown keys, so a
typo in a config file is an error that names the key, never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from fractions import Fraction
from pathlib import Path

from stream.wire.rates import parse_rate


class ConfigError(ValueError):
    """A config file problem; ``str()`` is one line naming the file, the key and what is allowed."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = f"{source}: " if source else ""
        at = f"[{key}] " if key else ""
        super().__init__(f"config error: {where}{at}{message}")


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "a string"
    if annotation is Fraction:
        return "a rate: a number or a 'p/q' string such as '10000/9'"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(annotation))
    if origin is tuple:
        arguments = typing.get_args(annotation)
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return f"a list of {_type_name(arguments[0])}"
        return f"a list of {len(arguments)} items ({', '.join(_type_name(a) for a in arguments)})"
    if dataclasses.is_dataclass(annotation):
        return "a table"
    return str(annotation)


def _convert(value: object, annotation: object, key: str) -> object:
    """Convert one TOML value to ``annotation``'s type, or raise ConfigError naming ``key``."""

    def fail() -> typing.NoReturn:
        raise ConfigError(f"{key.rsplit('.', 1)[-1]} = {value!r}: expected {_type_name(annotation)}", key=key)

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _convert(value, option, key)
            except ConfigError:
                continue
        fail()
    if annotation is bool:
        if not isinstance(value, bool):
            fail()
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail()
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail()
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            fail()
        return value
    if annotation is Fraction:
        try:
            return parse_rate(value)
        except ValueError as error:
            raise ConfigError(f"{key.rsplit('.', 1)[-1]} = {value!r}: {error}", key=key) from None
    if origin is typing.Literal:
        if value not in typing.get_args(annotation) or isinstance(value, bool) != any(
            isinstance(choice, bool) for choice in typing.get_args(annotation)
        ):
            fail()
        return value
    if origin is tuple:
        if not isinstance(value, list):
            fail()
        arguments = typing.get_args(annotation)
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_convert(item, arguments[0], f"{key}[{index}]") for index, item in enumerate(value))
        if len(value) != len(arguments):
            fail()
        return tuple(_convert(item, argument, f"{key}[{index}]") for index, (item, argument) in enumerate(zip(value, arguments)))
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            fail()
        return build_section(annotation, value, key)
    raise TypeError(f"config field {key} has an unsupported annotation {annotation!r}")


def build_section(section_type: type, table: dict, prefix: str = "") -> object:
    """Build ``section_type`` from a TOML table: unknown keys and wrong types are ConfigErrors."""
    hints = typing.get_type_hints(section_type)
    # Fields marked metadata={"toml": False} are set by the loader, never by a file.
    field_names = [field.name for field in dataclasses.fields(section_type) if field.metadata.get("toml", True)]
    unknown = sorted(set(table) - set(field_names))
    if unknown:
        where = prefix or "top level"
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {where}; allowed keys are: {', '.join(field_names)}",
            key=f"{prefix}.{unknown[0]}" if prefix else unknown[0],
        )
    values = {}
    for name in field_names:
        if name in table:
            values[name] = _convert(table[name], hints[name], f"{prefix}.{name}" if prefix else name)
    try:
        section = section_type(**values)
    except ConfigError as error:
        if error.key is None:
            raise ConfigError(str(error).removeprefix("config error: "), key=prefix or None) from None
        raise
    return section


def read_toml(path: Path) -> dict:
    """Read a TOML file, turning every failure into a one-line ConfigError."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"file {str(path)!r} does not exist; pass --config with an existing TOML file") from None
    except IsADirectoryError:
        raise ConfigError(f"{str(path)!r} is a directory, not a TOML file") from None
    except PermissionError:
        raise ConfigError(f"cannot read {str(path)!r}: permission denied") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not valid UTF-8 text: {error}") from None


def _jsonable(value: object) -> object:
    if dataclasses.is_dataclass(value):
        return {field.name: _jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return value


def to_dict(section: object) -> dict:
    """A plain, JSON-serialisable dict of a section (rates as 'p/q' strings)."""
    return _jsonable(section)


def config_hash(section: object) -> str:
    """sha256 of the canonical JSON form of a section: equal configs give equal hashes."""
    canonical = json.dumps(to_dict(section), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
