"""Reading the YAML policy files lawyers edit, and the texts people read in them.

``read_policy_file`` validates a file against a pydantic model; any fault becomes a
``PolicyError`` naming the file and the line (YAML syntax) or the entry and field (content).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError

from dsr.models import Language, StrictModel
from dsr.provenance import Provenance

M = TypeVar("M", bound=BaseModel)


class PolicyError(ValueError):
    """A policy file that cannot be used. The message names the file, the entry and the field."""


class LocalText(StrictModel):
    """A text people read, in English and (optionally) Chinese."""

    en: Annotated[str, Field(min_length=1)]
    zh: Annotated[str, Field(min_length=1)] | None = None

    def in_language(self, language: Language) -> str:
        """The text in ``language``, or in English where that translation is missing."""
        return getattr(self, language.value, None) or self.en

    def translations(self) -> dict[Language, str]:
        return {language: self.in_language(language) for language in Language}


class SourcedText(LocalText, Provenance):
    """A text with its status and source (``dsr/provenance.py``)."""


def read_policy_file(path: Path, model: type[M]) -> M:
    """Read and validate a YAML policy file; any fault becomes a ``PolicyError`` naming the
    file and the line (YAML syntax) or the entry and field (content). Parsed once per version
    of the file: a lawyer's edit is picked up by the next call."""
    try:
        modified = path.stat().st_mtime_ns
    except OSError as error:
        raise PolicyError(f"{path}: cannot be read ({error.strerror})") from None
    return _read_policy_file(path, modified, model)


@lru_cache(maxsize=32)
def _read_policy_file(path: Path, modified: int, model: type[M]) -> M:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(f"{path}: {_yaml_fault(error)}") from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        faults = "; ".join(_fault(data, err["loc"], err["msg"]) for err in error.errors())
        raise PolicyError(f"{path}: {faults}") from None


def _yaml_fault(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "not valid YAML"
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {problem}"


def _fault(data: Any, loc: tuple[int | str, ...], message: str) -> str:
    """``rules[2] (id 'sms'), field 'period.months': <message>`` from a pydantic location."""
    last_index = max((i for i, key in enumerate(loc) if isinstance(key, int)), default=-1)
    entry, node = "", data
    for key in loc[: last_index + 1]:
        node = _child(node, key)
        entry += f"[{key}]" if isinstance(key, int) else f".{key}" if entry else str(key)
        if isinstance(key, int) and isinstance(node, dict) and "id" in node:
            entry += f" (id {node['id']!r})"
    field = ".".join(str(key) for key in loc[last_index + 1 :])
    where = ", ".join(part for part in (entry, f"field {field!r}" if field else "") if part)
    return f"{where or 'top level'}: {message}"


def _child(node: Any, key: int | str) -> Any:
    if isinstance(key, int):
        return node[key] if isinstance(node, list) and 0 <= key < len(node) else None
    return node.get(key) if isinstance(node, dict) else None
