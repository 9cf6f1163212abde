"""Configs are dataclasses that validate themselves and refuse unknown keys."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

C = TypeVar("C", bound="Config")


class Config:
    """Mixin for dataclass configs: dict/JSON round trip that rejects unknown keys."""

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown key(s) {unknown}; allowed keys: {sorted(names)}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self: C, **changes: Any) -> C:
        return self.from_dict({**self.to_dict(), **changes})


def check_int(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}; got {value!r}")


def check_float(owner: str, name: str, value: Any, low: float, high: float,
                low_open: bool = False, high_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{owner}.{name} must be a number in {interval}; got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {choices}; got {value!r}")


def flag(default: Any = dataclasses.MISSING, *, help: str,
         choices: tuple | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field the command line offers as ``--field-name``.

    Its help text and allowed values live with the field, so a command builds its flags from
    the config (``assoclm train`` does for every model's settings) instead of keeping a
    second list. The config still validates the value itself.
    """
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"flag": {"help": help, "choices": choices}})


def flag_fields(config_cls: type) -> list[dataclasses.Field]:
    """The fields of a config dataclass declared with :func:`flag`, in field order."""
    return [f for f in dataclasses.fields(config_cls) if "flag" in f.metadata]
