"""The optional configuration file: which one, in which format, and one-line errors.

``--config`` names it, else ``EVALSTREAM_CONFIG_FILE``; its suffix picks pydantic-settings'
own source (TOML, YAML or JSON). The settings put it below flags and environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import yaml
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from consumer.errors import ConfigError

CONFIG_FILE_ENV = "EVALSTREAM_CONFIG_FILE"

_Source = Callable[[type[BaseSettings], Path], PydanticBaseSettingsSource]
# Suffix -> (format name, pydantic-settings' source for it).
_FORMATS: dict[str, tuple[str, _Source]] = {
    ".toml": ("TOML", lambda cls, path: TomlConfigSettingsSource(cls, toml_file=path)),
    ".yaml": ("YAML", lambda cls, path: YamlConfigSettingsSource(cls, yaml_file=path)),
    ".yml": ("YAML", lambda cls, path: YamlConfigSettingsSource(cls, yaml_file=path)),
    ".json": ("JSON", lambda cls, path: JsonConfigSettingsSource(cls, json_file=path)),
}


def file_source(
    settings_cls: type[BaseSettings], config_file: Path | None
) -> PydanticBaseSettingsSource | None:
    """The parsed configuration file, or None when neither the flag nor the variable names one.

    Raises:
        ConfigError: the file is missing, unreadable, of an unknown format or malformed; one
            line naming the file and whether ``--config`` or the variable named it.
    """
    given_by = "--config"
    if config_file is None:
        named = os.environ.get(CONFIG_FILE_ENV, "")
        if not named:
            return None
        config_file, given_by = Path(named), CONFIG_FILE_ENV
    where_from = f"(set by {given_by})"
    if not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist {where_from}")
    kind = _FORMATS.get(config_file.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"config file {config_file}: unknown format {config_file.suffix!r}, use .toml, "
            f".yaml, .yml or .json {where_from}"
        )
    name, build = kind
    try:
        # The sources parse the file when built, so every syntax error surfaces here.
        return build(settings_cls, config_file)
    except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())  # YAML's messages span lines
        if "dictionary update sequence" in detail:
            # The source merges the file into a dict: a top-level list or scalar fails there.
            detail = "its top level must be a mapping of sections and fields"
        raise ConfigError(
            f"config file {config_file} is not valid {name}: {detail} {where_from}"
        ) from exc
