"""The reference connectors made from dataset files (``connectors/datasets/<name>.yaml``): each
is the dataset connector over its reference store, whose tables (``connectors/<name>_store.py``,
which the demo seeds fill) it creates when they are absent, as a product's own store would."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
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

    attributes: dict[str, Any] = {"__init__": __init__, "schema": schema, "dataset_file": path,
                                  "__doc__": f"The {name} connector: {path.name}'s dataset "
                                  "connector on its reference store."}
    return type(served.__name__, (served,), attributes)
