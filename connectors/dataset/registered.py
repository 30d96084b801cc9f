"""A dataset connector served from its registry entry (``dataset: path/to/file.yaml``): the file
read, checked against the entry (its name, role, categories, identity types, and operations the
dataset connector can do) and against the live database, every problem listed at once; the
connector then serves the operations the entry lists."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.dataset.connector import DatasetConnector
from connectors.dataset.model import Dataset, DatasetError, load_dataset
from connectors.dataset.schema import check_dataset
from connectors.kit.store import as_engine
from dsr.blobstore import BlobStore
from dsr.connector_registry import ConnectorEntry


def registered_connector(entry: ConnectorEntry, url: str, blobs: BlobStore, secret: bytes, *,
                         previous_secrets: Sequence[bytes] = ()) -> DatasetConnector:
    """The entry's dataset connector on the database at ``url``; ``DatasetError`` lists what
    is wrong with the file, the entry and the database together."""
    path = entry.dataset_path
    if path is None:
        raise ValueError(f"connector {entry.name}: its registry entry names no dataset")
    try:
        dataset = load_dataset(path)
    except DatasetError as error:  # named by the entry (the file may not say)
        raise DatasetError(entry.name, error.problems) from None
    problems = entry_problems(entry, dataset)
    if not problems:
        cls = DatasetConnector.for_dataset(dataset, entry.operations)
        return cls(url, blobs, secret, previous_secrets=previous_secrets)
    engine = as_engine(url)
    try:
        check_dataset(dataset, engine)  # listed with the entry's
    except DatasetError as error:
        problems += error.problems
    finally:
        engine.dispose()
    raise DatasetError(entry.name, problems)


def entry_problems(entry: ConnectorEntry, dataset: Dataset) -> list[str]:
    """Where the registry entry and its dataset file disagree: the orchestrator sends only
    what the entry declares."""
    problems = []
    if entry.name != dataset.connector:
        problems.append(f"registry entry {entry.name}: its dataset file is connector "
                        f"{dataset.connector}")
    if entry.role != dataset.role:
        problems.append(f"registry entry {entry.name}: role {entry.role.value}, the dataset's "
                        f"is {dataset.role.value}")
    listed, held = set(entry.categories), set(dataset.categories)
    problems += [f"category {category}: held by the dataset, not in the registry entry (it "
                 "would never be erased or swept)" for category in dataset.categories
                 if category not in listed]
    problems += [f"category {category}: in the registry entry, not held by the dataset"
                 for category in entry.categories if category not in held]
    types = set(dataset.identity_types)
    problems += [f"identity type {kind.value}: held by the dataset, not in the registry entry "
                 "(it would never be sent)" for kind in dataset.identity_types
                 if kind not in entry.identity_types]
    problems += [f"identity type {kind.value}: in the registry entry, held by no column of "
                 "the dataset" for kind in entry.identity_types if kind not in types]
    if entry.keeps_country and not any(table.country_column for table in dataset.tables.values()):
        problems.append(f"registry entry {entry.name}: keeps_country, but no table of the "
                        "dataset declares a country_column")
    return problems + dataset.unsupported(entry.operations)
