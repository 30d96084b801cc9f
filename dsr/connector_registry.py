"""The connector registry: which connectors exist, where they listen, what they can do."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from dsr.connector_contract import Operation
from dsr.models import IdentityType

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # a dataset's relative path starts here


class DataRole(StrEnum):
    END_USER = "end_user"
    GROUP = "group"


class EmailInstruction(BaseModel):
    """A recipient with no API (an approved sub-processor): instructions go by email and an
    officer records the confirmation; the officer is reminded while it is awaited."""

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    remind_after_hours: int = Field(default=168, ge=1, le=24 * 90)


class ConnectorEntry(BaseModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    affiliate: str
    products: list[str]
    task_queue: str | None = None
    role: DataRole
    identity_types: list[IdentityType]
    operations: list[Operation]
    # The data categories it holds: only these are sent to it (erase rules, holdings).
    categories: list[str] = Field(default_factory=list)
    instruct_by_email: EmailInstruction | None = None
    # Its store keeps the country that decides retention (where a communication ended; the
    # contracting entity's), so a sweep rule may be confined to countries. Without it, a sweep
    # gets one rule per category with the longest period of any country: never early.
    keeps_country: bool = False
    # A connector made from a dataset file (connectors/README.md, "A dataset file"), served by
    # `python worker.py --connector NAME`: the file's path, relative to the project root or
    # absolute. The worker checks it against the entry and the live database when it starts.
    dataset: str | None = Field(default=None, pattern=r"^[^\x00]*[^/\x00]\.ya?ml$")

    @model_validator(mode="after")
    def _reachable(self) -> ConnectorEntry:
        if (self.task_queue is None) == (self.instruct_by_email is None):
            raise ValueError(f"{self.name}: give either task_queue (a connector worker) or "
                             "instruct_by_email (a recipient without an API)")
        if self.dataset is not None and self.task_queue is None:
            raise ValueError(f"{self.name}: a dataset is served by a connector worker: give "
                             "task_queue, not instruct_by_email")
        return self

    @property
    def dataset_path(self) -> Path | None:
        """The dataset file's path, if the entry names one."""
        if self.dataset is None:
            return None
        path = Path(self.dataset)
        return path if path.is_absolute() else PROJECT_ROOT / path

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
    """The registry as the file says now: an edited file is read again, an unchanged one is
    not parsed again (the policy and hold-check steps read it for every request)."""
    try:
        stat = path.stat()
        return Registry.model_validate(_parsed(path, stat.st_mtime_ns, stat.st_size))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise RegistryError(f"connector registry {path} is invalid: {error}") from None


@lru_cache(maxsize=8)
def _parsed(path: Path, mtime_ns: int, size: int) -> Any:
    return yaml.safe_load(path.read_text())
