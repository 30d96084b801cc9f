"""Every file lawyers and operators edit, checked at start: a worker with a bad rule refuses
to start, naming the file, the line or entry and the field, instead of failing a request."""

from __future__ import annotations

from dsr import children, deadline_policy, retention
from dsr.access_facts import load_access_policies
from dsr.catalogue import load_authorities
from dsr.connector_registry import RegistryError, load_registry
from dsr.credentials import CredentialError, load_action_roles
from dsr.emails import load_words
from dsr.settings import Settings


class PolicyFault(Exception):
    pass


def check_policies(settings: Settings) -> None:
    """Load and validate deadlines, retention, children, catalogue with recipients and
    transfers, authorities, roles, words and registry."""
    folder = settings.policy_dir
    try:
        deadline_policy.load_deadline_policy(folder / "deadlines.yaml")
        retention.load_retention_policy(folder / "retention.yaml")
        children.load_child_policy(folder / "children.yaml")
        load_access_policies(folder)  # catalogue, recipients and transfers, checked together
        load_authorities(folder / "authorities.yaml")
        load_action_roles(folder)
        load_words()
        load_registry(settings.connector_registry)
    except (deadline_policy.PolicyError, retention.PolicyError, RegistryError,
            CredentialError) as error:
        raise PolicyFault(str(error)) from None


def check_catalogue_covers_registry(settings: Settings) -> None:
    """The orchestrator's check: the catalogue describes every category the registry's
    connectors hold, or no access answer could say what they are (a connector's own worker
    does not need the catalogue)."""
    access = load_access_policies(settings.policy_dir)
    registry = load_registry(settings.connector_registry)
    undescribed = [f"{entry.name}.{category}" for entry in registry.connectors
                   for category in entry.categories
                   if not access.catalogue.describes(entry.name, category)]
    if undescribed:
        catalogue = settings.policy_dir / "catalogue.yaml"
        raise PolicyFault(
            f"{catalogue}: no entry for {', '.join(undescribed)} (the registry's connector "
            "categories): an access answer could not say what they are; add each under "
            "connectors.<connector> in the catalogue")
