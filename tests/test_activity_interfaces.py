"""The orchestrator's activities as the workflows call them (``activities.interfaces``) and as
the worker registers them (``activities.orchestrator``) agree: same names, the input the
interface names, the output it promises. The names are those recorded histories hold."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity

import activities.interfaces
from activities.anchor import AnchorActivities
from activities.answer import AnswerActivities
from activities.children import ChildActivities
from activities.interfaces import ActivityInterface
from activities.legal_hold import LegalHoldActivities
from activities.mail import MailActivities
from activities.package import PackageActivities
from activities.policy import PolicyActivities
from activities.proof import ProofActivities
from activities.register import RegisterActivities
from activities.review import ReviewActivities
from activities.sweep import SweepActivities
from activities.verification import VerificationActivities

# As activities.orchestrator registers them.
IMPLEMENTATIONS: list[Callable[..., Any]] = [
    RegisterActivities.record_intake, RegisterActivities.record_milestone,
    PolicyActivities.snapshot, PolicyActivities.compute, PolicyActivities.extend,
    ChildActivities.plan, MailActivities.send_notice, VerificationActivities.issue_codes,
    VerificationActivities.check_code, LegalHoldActivities.assess, PackageActivities.assemble,
    AnswerActivities.send, ReviewActivities.review, ProofActivities.purge_confirmations,
    AnchorActivities.anchor, SweepActivities.sweep_plan, SweepActivities.record_sweep,
]
# Recorded histories name these: renaming one breaks every running request that calls it.
NAMES = {
    "register.intake", "register.milestone", "policy.snapshot", "deadline.compute",
    "deadline.extend", "children.review_plan", "mail.send_notice", "verification.issue_codes",
    "verification.check_code", "legal_hold.assess", "package.assemble", "answer.send",
    "answer.review", "proof.purge_confirmations", "ledger.anchor", "retention.sweep_plan",
    "retention.record_sweep",
}


def interfaces() -> dict[str, ActivityInterface[Any, Any]]:
    found: dict[str, ActivityInterface[Any, Any]] = {}
    for module in pkgutil.iter_modules(activities.interfaces.__path__):
        loaded = importlib.import_module(f"activities.interfaces.{module.name}")
        for value in vars(loaded).values():
            if isinstance(value, ActivityInterface):
                assert found.setdefault(value.name, value) is value, f"{value.name} twice"
    return found


def _same_type(one: Any, other: Any) -> bool:
    """``str | None`` and ``Optional[str]`` alike."""
    def parts(hint: Any) -> Any:
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            return frozenset(typing.get_args(hint))
        return hint
    return bool(parts(one) == parts(other))


def test_every_activity_has_its_interface_and_keeps_its_name() -> None:
    declared = interfaces()
    assert set(declared) == NAMES
    implemented = {}
    for method in IMPLEMENTATIONS:
        definition = activity._Definition.from_callable(method)
        assert definition is not None and definition.name is not None
        implemented[definition.name] = definition
    assert set(implemented) == NAMES


@pytest.mark.parametrize("name", sorted(NAMES))
def test_implementation_takes_and_returns_what_its_interface_says(name: str) -> None:
    interface = interfaces()[name]
    definition = next(d for method in IMPLEMENTATIONS
                      if (d := activity._Definition.from_callable(method)) and d.name == name)
    assert definition.arg_types == [interface.input]
    expected = type(None) if interface.output is None else interface.output
    assert _same_type(definition.ret_type, expected), (definition.ret_type, expected)


def test_interfaces_import_no_implementation() -> None:
    """A workflow importing an interface loads no activity's implementation (nor the
    workflows, connectors or services)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import activities.interfaces as i\n"
        "for m in pkgutil.iter_modules(i.__path__):\n"
        "    importlib.import_module(f'activities.interfaces.{m.name}')\n"
        "print('\\n'.join(sys.modules))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    above = [name for name in loaded
             if name.split(".")[0] in {"workflows", "connectors", "services", "cli"}
             or (name.startswith("activities.") and not name.startswith("activities.interfaces"))]
    assert above == []
