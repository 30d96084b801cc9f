"""The rules and texts in ``dsr/policy/*.yaml`` that carry a status (``dsr/provenance.py``),
found by address, fingerprinted, and confirmed.

An address names an entry within its file: mapping keys joined by dots, a list item by its
``id``, ``name`` or ``country`` (``rules.telecom-traffic-location.overrides.IT``,
``jurisdictions.UK.complaint``). A fingerprint is the SHA-256 of the entry without status
fields: a confirmation holds for the text Legal read, and any later edit of that text makes it
a different entry, which a worker refuses to take as confirmed (``unrecorded``).

``confirm`` rewrites one entry's status fields in place, keeping the file's comments and
layout; the officer service calls it for an authenticated lawyer or administrator and records
the confirmation in the ledger (``services.rule_actions``).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from dsr.files import write_private_atomically
from dsr.provenance import STATEMENT, RuleStatus

STATUS_FIELDS = ("status", "confirmed_by", "confirmed_on")
ITEM_KEYS = ("id", "name", "country")  # what names a list item in an address
PROVENANCE = "provenance"  # an entry's status fields nested in a block of their own


class RuleError(Exception):
    """What is wrong with an address or a file; names it and says what to do."""


class UnknownRule(RuleError):
    """No rule or text at that address."""


@dataclass(frozen=True)
class RuleEntry:
    file: str  # the file's name in the policy folder
    address: str
    status: RuleStatus
    source: str
    confirmed_by: str | None
    confirmed_on: date | None
    fingerprint: str


def entries(policy_dir: Path) -> list[RuleEntry]:
    """Every entry with a status, in every policy file, in file order."""
    found: list[RuleEntry] = []
    for path in sorted(policy_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        found += [_entry(path.name, address, node) for address, node in _walk(data, "")]
    return found


def fingerprint(node: dict[str, Any]) -> str:
    """Of the entry's text, its own and its parts' status fields left out at every depth (a
    ``provenance`` block counts by its source alone): confirming an override inside a rule
    leaves the rule's fingerprint, and so its confirmation, as it was."""
    canonical = json.dumps(_text(node), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _text(value: Any) -> Any:
    if isinstance(value, dict):
        if _has_status(value) and set(value) <= {*STATUS_FIELDS, "source"}:
            return value["source"]  # a provenance block
        return {key: _text(child) for key, child in value.items() if key not in STATUS_FIELDS}
    if isinstance(value, list):
        return [_text(child) for child in value]
    return value


def find(policy_dir: Path, file: str, address: str) -> RuleEntry:
    for entry in entries(policy_dir):
        if (entry.file, entry.address) == (file, address):
            return entry
    raise UnknownRule(f"{file} has no rule or text at {address!r}: `starter.py rules list` "
                    "shows every address")


def confirm(policy_dir: Path, file: str, address: str, confirmed_by: str, on: date) -> RuleEntry:
    """Mark the entry confirmed by ``confirmed_by`` on ``on`` in its file; returns it as now
    confirmed. Refused for an entry already confirmed."""
    entry = find(policy_dir, file, address)
    if entry.status is RuleStatus.CONFIRMED:
        raise RuleError(f"{file} {address} is already confirmed by {entry.confirmed_by} on "
                        f"{entry.confirmed_on}")
    path = policy_dir / file
    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    yaml_rt.width = 4096
    document = yaml_rt.load(path.read_text(encoding="utf-8"))
    node = _status_node(_node_at(document, address))
    node["status"] = RuleStatus.CONFIRMED.value
    position = list(node).index("source") + 1
    node.insert(position, "confirmed_by", confirmed_by)
    node.insert(position + 1, "confirmed_on", on)
    buffer = io.StringIO()
    yaml_rt.dump(document, buffer)
    mode = path.stat().st_mode & 0o777
    write_private_atomically(path, buffer.getvalue())
    path.chmod(mode)  # a policy file is read by every worker: it keeps its own mode
    return find(policy_dir, file, address)


def unrecorded(policy_dir: Path, recorded: set[tuple[str, str, str]]) -> list[RuleEntry]:
    """Entries marked confirmed by someone other than the statement whose (file, address,
    fingerprint) has no confirmation in the ledger: edited by hand, or changed after."""
    return [
        entry for entry in entries(policy_dir)
        if entry.status is RuleStatus.CONFIRMED and entry.confirmed_by != STATEMENT
        and (entry.file, entry.address, entry.fingerprint) not in recorded
    ]


def _walk(node: Any, address: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(address, entry) for each entry: a mapping with status fields, its own or nested."""
    if isinstance(node, dict):
        if _has_status(node) or _has_status(node.get(PROVENANCE)):
            yield address, node
        for key, child in node.items():
            if key != PROVENANCE:
                yield from _walk(child, _join(address, str(key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _walk(child, _join(address, _item_name(child, index)))


def _has_status(node: Any) -> bool:
    return isinstance(node, dict) and "status" in node and "source" in node


def _status_node(node: Any) -> Any:
    return node if _has_status(node) else node[PROVENANCE]


def _item_name(node: Any, index: int) -> str:
    if isinstance(node, dict):
        for key in ITEM_KEYS:
            if isinstance(node.get(key), str):
                return str(node[key])
    return str(index)


def _join(address: str, part: str) -> str:
    return f"{address}.{part}" if address else part


def _node_at(document: Any, address: str) -> Any:
    node = document
    for part in address.split("."):
        if isinstance(node, list):
            node = next(child for index, child in enumerate(node)
                        if _item_name(child, index) == part)
        else:
            node = node[part]
    return node


def _entry(file: str, address: str, node: dict[str, Any]) -> RuleEntry:
    fields = _status_node(node)
    try:
        status = RuleStatus(fields["status"])
    except ValueError:
        raise RuleError(f"{file} {address}: status is draft or confirmed, not "
                        f"{fields['status']!r}") from None
    return RuleEntry(file=file, address=address, status=status, source=str(fields["source"]),
                     confirmed_by=fields.get("confirmed_by"),
                     confirmed_on=fields.get("confirmed_on"), fingerprint=fingerprint(node))
