"""A declarative SQL connector: an affiliate's relational database connected by a dataset
file (``connectors/README.md``, "A dataset file")."""

from connectors.dataset.connector import DatasetConnector, dataset_connector
from connectors.dataset.model import (
    Dataset,
    DatasetError,
    dataset_treatments,
    load_dataset,
    parse_dataset,
)

__all__ = [
    "Dataset",
    "DatasetConnector",
    "DatasetError",
    "dataset_connector",
    "dataset_treatments",
    "load_dataset",
    "parse_dataset",
]
