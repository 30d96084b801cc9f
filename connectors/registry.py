"""The connector registry: which connectors exist, where they listen, what they can do."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from connectors.protocol import Operation
from dsr.models import IdentityType


class DataRole(StrEnum):
    END_USER = "end_user"
    GROUP = "group"


class ConnectorEntry(BaseModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    affiliate: str
    products: list[str]
    task_queue: str
    role: DataRole
    identity_types: list[IdentityType]
    operations: list[Operation]

    def supports(self, operation: Operation) -> bool:
        return operation in self.operations


class Registry(BaseModel):
    connectors: list[ConnectorEntry]

    def get(self, name: str) -> ConnectorEntry:
        for entry in self.connectors:
            if entry.name == name:
                return entry
        raise KeyError(f"no connector named {name!r} in the registry")


class RegistryError(Exception):
    pass


def load_registry(path: Path) -> Registry:
    try:
        return Registry.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise RegistryError(f"connector registry {path} is invalid: {error}") from None
