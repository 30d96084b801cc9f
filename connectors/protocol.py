"""Deprecated, kept for one release: the connector contract moved to
``dsr.connector_contract``. Import from there; this module only re-exports it."""

from dsr.connector_contract import *  # noqa: F403
