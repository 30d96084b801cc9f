"""The error a connector raises for an input it cannot act on: its activity then fails
without retry (``connectors.kit.activities``)."""

from __future__ import annotations


class ConnectorInputError(ValueError):
    """An input the connector cannot act on (unknown category, malformed correction).

    Retrying cannot help, so the activity fails without retry. The message names the field
    or category, never a value."""
