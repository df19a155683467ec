"""Build typed dataclasses from plain YAML/JSON data, with one-line errors naming the offending key.

One generic builder serves every section of a case file (and any options dataclass of a stage),
so defaults live in exactly one place: the dataclass that uses them.
"""

import dataclasses
import types
import typing
from pathlib import Path

import numpy as np

from bonefe.errors import BonefeError


def build(cls, data, where: str):
    """Return `cls(**data)` after checking every key and value against the fields of `cls`.

    `where` names the location for messages, e.g. "case.yaml: mesh".
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BonefeError(f"{where} must be a mapping of keys to values, not {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BonefeError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        values[name] = convert(hints[name], value, f"{where}.{name}")
    missing = [name for name, f in fields.items() if name not in values and _required(f)]
    if missing:
        raise BonefeError(f"{where}: missing required key '{missing[0]}'")
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:  # a dataclass's own __post_init__ checks
        raise BonefeError(f"{where}: {error}") from None


def convert(hint, value, where: str):
    """Check `value` against the type `hint` and return it converted (int→float, str→Path, ...)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return convert(option, value, where)
            except BonefeError as error:
                errors.append(str(error))
        raise BonefeError(errors[0])
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is typing.Literal:
        if value not in args:
            raise BonefeError(f"{where} must be one of {', '.join(map(str, args))} (got {value!r})")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise BonefeError(f"{where} must be a list, not {_kind(value)}")
        item = args[0] if args else typing.Any
        if origin is tuple and len(args) > 1 and args[1] is not Ellipsis:
            if len(value) != len(args):
                raise BonefeError(f"{where} must have {len(args)} entries (got {len(value)})")
            return tuple(convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        converted = [convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise BonefeError(f"{where} must be a mapping, not {_kind(value)}")
        key_type, value_type = args or (typing.Any, typing.Any)
        return {convert(key_type, k, where): convert(value_type, v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(hint, value, where)


def _scalar(hint, value, where):
    if hint is typing.Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BonefeError(f"{where} must be a number (got {value!r})")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BonefeError(f"{where} must be a whole number (got {value!r})")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise BonefeError(f"{where} must be true or false (got {value!r})")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise BonefeError(f"{where} must be text (got {value!r})")
        return value
    if hint is Path:
        if not isinstance(value, str):
            raise BonefeError(f"{where} must be a file path (got {value!r})")
        return Path(value)
    raise TypeError(f"unsupported type {hint} at {where}")


def _required(field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _kind(value) -> str:
    return {list: "a list", dict: "a mapping", str: "text"}.get(type(value), repr(value))


def as_plain(obj):
    """A dataclass tree as plain JSON-ready data (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): as_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def plain_values(value):
    """numpy scalars/arrays and dataclasses as plain Python values (JSON-ready, for the schema builder)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain_values(as_plain(value))
    if isinstance(value, dict):
        return {str(k): plain_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain_values(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
