"""The worker's command-line flags, generated from the settings model.

Each setting is declared once, in `consumer.settings`: its field name gives the flag
(``kafka.commit_interval_s`` is ``--kafka-commit-interval-s``; a field may name a shorter
flag of its own, ``json_schema_extra={"flag": "--group"}``), its description the help text,
and its default the help's "(default: ...)". Secrets (``SecretStr``) and fields marked
``json_schema_extra={"no_flag": True}`` (test-only hooks) have no flag: a
command line is visible to every user of the machine (``ps``); they come from the
environment or the file. Dicts and lists take JSON.
"""

from __future__ import annotations

import argparse
import json
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclass(frozen=True, slots=True)
class SettingFlag:
    """One setting as a command-line flag.

    Attributes:
        path: the field's place in the settings, e.g. ``("engine", "openai", "api")``.
        name: the flag, e.g. ``--api``.
        field: the field's declaration (type, description, default).
    """

    path: tuple[str, ...]
    name: str
    field: FieldInfo

    @property
    def dest(self) -> str:
        """The argparse destination: the path joined by ``__``, like the environment's."""
        return "__".join(self.path)


def setting_flags(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[SettingFlag]:
    """Every flag of ``model``'s fields, sections walked in declaration order."""
    for name, field in model.model_fields.items():
        here = (*path, name)
        kind = _bare(field.annotation)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from setting_flags(kind, here)
        elif kind is not SecretStr and not _extra(field).get("no_flag"):
            flag = _extra(field).get("flag")
            yield SettingFlag(here, str(flag) if flag else _derived(here), field)


def add_setting_flags(parser: argparse.ArgumentParser, flags: Sequence[SettingFlag]) -> None:
    """Adds ``flags`` to ``parser``; an unset flag parses to None (the other sources decide)."""
    for flag in flags:
        kind = _bare(flag.field.annotation)
        options: dict[str, Any] = {"dest": flag.dest, "default": None, "help": _help(flag)}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif get_origin(kind) is Literal or _choices(flag.field):
            options["choices"] = _choices(flag.field) or [str(x) for x in get_args(kind)]
        elif get_origin(kind) in (dict, list):
            options.update(type=json.loads, metavar="JSON")
        elif kind in (int, float, Path):
            options.update(type=kind, metavar=flag.path[-1].upper())
        else:
            options["metavar"] = flag.path[-1].upper()
        parser.add_argument(flag.name, **options)


def overrides(args: argparse.Namespace, flags: Sequence[SettingFlag]) -> dict[str, Any]:
    """The flags given on the command line as nested settings values (sections as dicts)."""
    values: dict[str, Any] = {}
    for flag in flags:
        value = getattr(args, flag.dest)
        if value is None:
            continue
        section = values
        for key in flag.path[:-1]:
            section = section.setdefault(key, {})
        section[flag.path[-1]] = value
    return values


def _derived(path: tuple[str, ...]) -> str:
    return "--" + "-".join(path).replace("_", "-")


def _bare(annotation: Any) -> Any:
    """The annotation without ``| None``."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _extra(field: FieldInfo) -> Mapping[str, Any]:
    """What the field declares for its flag: ``flag``, ``choices``, ``default_help``."""
    extra = field.json_schema_extra
    return extra if isinstance(extra, Mapping) else {}


def _choices(field: FieldInfo) -> list[str] | None:
    """Choices a field lists itself (a name checked against a registry, not a Literal)."""
    choices = _extra(field).get("choices")
    return [str(x) for x in choices] if isinstance(choices, list) else None


def _help(flag: SettingFlag) -> str:
    """The field's description, its default and its variable (argparse formats ``%``)."""
    text = (flag.field.description or "").rstrip(".")
    variable = "EVALSTREAM_" + flag.dest.upper()
    return f"{text} (default: {_default(flag.field)}; {variable})".replace("%", "%%")


def _default(field: FieldInfo) -> str:
    extra = _extra(field)
    if "default_help" in extra:
        return str(extra["default_help"])
    default = field.get_default(call_default_factory=True)
    if default is None or default is PydanticUndefined:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, dict | list):
        return json.dumps(default)
    return str(default)
