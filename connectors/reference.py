"""The reference connectors made from dataset files (``connectors/datasets/<name>.yaml``): each
is the dataset connector over its reference store, whose tables (``connectors/<name>_store.py``,
which the demo seeds fill) it creates when they are absent, as a product's own store would.

A store the hand-written connector kept before has its restrictions in ``restrictions`` (the
kit's, by keyed identity hash): the first start copies them into the dataset connector's own,
so that nobody restricted before stops being restricted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, func, insert, inspect, select
from sqlalchemy.orm import DeclarativeBase

from connectors.dataset.connector import DatasetConnector
from connectors.dataset.model import load_dataset
from connectors.kit.store import as_engine
from dsr.blobstore import BlobStore
from dsr.schemalock import schema_lock

DATASETS = Path(__file__).parent / "datasets"


def reference_connector(name: str, schema: type[DeclarativeBase]) -> type[DatasetConnector]:
    """The connector class of ``connectors/datasets/<name>.yaml`` on the reference store
    ``schema`` declares; ``dataset_file`` names the file (its registry entry names it too)."""
    path = DATASETS / f"{name}.yaml"
    served = DatasetConnector.for_dataset(load_dataset(path))

    def __init__(self: DatasetConnector, engine_or_url: Engine | str, blobs: BlobStore,
                 secret: bytes, *, previous_secrets: Sequence[bytes] = ()) -> None:
        engine = as_engine(engine_or_url)
        with schema_lock(engine) as connection:  # the reference store, if absent
            schema.metadata.create_all(connection)
            connection.commit()
        served.__init__(self, engine, blobs, secret, previous_secrets=previous_secrets)
        adopt_restrictions(self)

    attributes: dict[str, Any] = {"__init__": __init__, "schema": schema, "dataset_file": path,
                                  "__doc__": f"The {name} connector: {path.name}'s dataset "
                                  "connector on its reference store."}
    return type(served.__name__, (served,), attributes)


LEGACY_RESTRICTIONS = "restrictions"  # the hand-written connector's (``RestrictionMixin``)


def adopt_restrictions(connector: DatasetConnector) -> int:
    """Copy the hand-written connector's restrictions into the connector's own table, once
    (while that is empty); how many."""
    engine = connector.store.engine
    if LEGACY_RESTRICTIONS not in inspect(engine).get_table_names():
        return 0
    legacy = Table(LEGACY_RESTRICTIONS, MetaData(), autoload_with=engine)
    own = connector.restriction_model.__table__  # type: ignore[attr-defined]
    columns = ["customer_account", "identity_hash", "request_id", "since", "lifted_at"]
    with engine.begin() as connection:
        if connection.scalar(select(func.count()).select_from(own)):
            return 0
        copied = connection.execute(insert(own).from_select(
            columns, select(*(legacy.c[column] for column in columns))))
        return int(copied.rowcount)
