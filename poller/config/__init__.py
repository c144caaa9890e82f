"""Configuration: a file or an API body -> frozen instance, resource and dates configs. Pure.

    result = load_config("config.json", environ)   # or load_config_text(text, name, environ)
    result.config.instances, result.warnings          # or ConfigLoadError(problems, warnings)

Every problem names the file and the JSON path (DESIGN.md §2). The package reads no clock, no
network and no database: ``load`` (the three file shapes, the engine keys), ``instance`` and
``resource`` (the Cloud Elements keys), ``values`` (strings-or-natives, ``${env:...}``,
problems), ``types`` (the frozen dataclasses), ``templates`` (URL placeholders, DESIGN.md §3)
and ``schema`` (the JSON Schema of the file, ``poller schema``).
"""

from poller.config.load import ConfigLoadError, load_config, load_config_text
from poller.config.types import (
    ApiConfig,
    Config,
    DatesConfig,
    DeliveryConfig,
    EngineConfig,
    InstanceConfig,
    LoadResult,
    LogConfig,
    PaginationConfig,
    ResourceConfig,
    RetentionConfig,
    SecretStr,
)

__all__ = [
    "ApiConfig", "Config", "ConfigLoadError", "DatesConfig", "DeliveryConfig", "EngineConfig",
    "InstanceConfig", "LoadResult", "LogConfig", "PaginationConfig", "ResourceConfig", "RetentionConfig", "SecretStr",
    "load_config", "load_config_text",
]
