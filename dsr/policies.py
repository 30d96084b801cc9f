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
    transfers, authorities, roles, words and registry; the catalogue describes every category
    the registry's connectors hold."""
    folder = settings.policy_dir
    try:
        deadline_policy.load_deadline_policy(folder / "deadlines.yaml")
        retention.load_retention_policy(folder / "retention.yaml")
        children.load_child_policy(folder / "children.yaml")
        access = load_access_policies(folder)  # catalogue, recipients, transfers together
        load_authorities(folder / "authorities.yaml")
        load_action_roles(folder)
        load_words()
        registry = load_registry(settings.connector_registry)
    except (deadline_policy.PolicyError, retention.PolicyError, RegistryError,
            CredentialError) as error:
        raise PolicyFault(str(error)) from None
    undescribed = [f"{entry.name}.{category}" for entry in registry.connectors
                   for category in entry.categories
                   if not access.catalogue.describes(entry.name, category)]
    if undescribed:
        raise PolicyFault(
            f"{folder / 'catalogue.yaml'}: no entry for {', '.join(undescribed)} (the registry's "
            "connector categories): an access answer could not say what they are; add each "
            "under connectors.<connector> in the catalogue")
