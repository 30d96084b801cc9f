"""A dataset connector served from the registry: an entry naming a dataset file (relative to the
project root or absolute) is built by ``build_connector`` and served by ``python worker.py
--connector NAME``, with the operations the entry lists; a worker refuses to start, listing
every problem, when the file does not fit its entry or the live database (SQLite and
PostgreSQL), or the entry lists an operation the dataset connector cannot do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine

import worker
from connectors.builtin import BUILTIN, build_connector, builtin_dataset, served_connectors
from connectors.dataset import DatasetError, load_dataset
from connectors.dataset.registered import entry_problems
from dsr.blobstore import LocalBlobStore
from dsr.connector_registry import (
    PROJECT_ROOT,
    ConnectorEntry,
    Registry,
    RegistryError,
    load_registry,
)
from dsr.settings import Settings
from tests.connectors.test_example import EMAIL, LOYALTY_FILE, SCHEMA, loyalty_entry


@pytest.fixture
def loyalty_url(app_database_url: str) -> Iterator[str]:
    """The loyalty system's database, its table holding one customer's entry."""
    engine = create_engine(app_database_url)
    with engine.begin() as connection:
        for statement in SCHEMA:
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql(f"INSERT INTO points VALUES (1, 'acct-a', '{EMAIL}', 10, "
                                   "'2026-01-01 10:00:00')")
    yield app_database_url
    engine.dispose()


def registry_with(tmp_path: Path, **fields: Any) -> Path:
    """A registry file of the shipped connectors and the loyalty entry, changed by ``fields``."""
    registry = yaml.safe_load((PROJECT_ROOT / "connectors" / "registry.yaml").read_text())
    registry["connectors"].append(loyalty_entry("dsr-connector-loyalty", **fields))
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(registry))
    return path


def settings_for(tmp_path: Path, registry: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", connector_registry=registry)


def loyalty_file(tmp_path: Path, replace: str = "", by: str = "") -> Path:
    """The example's dataset file, copied outside the project (an absolute path) and edited."""
    path = tmp_path / "loyalty.yaml"
    path.write_text((PROJECT_ROOT / LOYALTY_FILE).read_text().replace(replace, by))
    return path


# --- the registry ------------------------------------------------------------------------------


def test_an_entry_names_a_dataset_file(tmp_path: Path) -> None:
    entry = load_registry(registry_with(tmp_path)).get("loyalty")
    assert entry.dataset_path == PROJECT_ROOT / LOYALTY_FILE
    absolute = ConnectorEntry.model_validate(
        loyalty_entry("q", dataset=str(tmp_path / "loyalty.yml")))
    assert absolute.dataset_path == tmp_path / "loyalty.yml"
    assert ConnectorEntry.model_validate(loyalty_entry("q", dataset=None)).dataset_path is None
    for wrong in ({"dataset": "connectors/datasets/loyalty.json"},
                  {"task_queue": None, "instruct_by_email": {"email": "privacy@acme.example"}}):
        with pytest.raises(ValidationError):
            ConnectorEntry.model_validate(loyalty_entry("q", **wrong))


def test_a_worker_serves_built_in_and_dataset_connectors(tmp_path: Path) -> None:
    registry = load_registry(registry_with(tmp_path))
    assert served_connectors(registry)[-2:] == ["marketing", "loyalty"]
    plain = Registry(connectors=[entry for entry in registry.connectors
                                 if entry.name != "loyalty"])
    assert "loyalty" not in served_connectors(plain)
    sms = registry.get("sms").model_copy(update={"dataset": LOYALTY_FILE})
    with pytest.raises(RegistryError, match=r"connector\(s\) sms built in"):
        served_connectors(Registry(connectors=[sms]))


# The built-in connectors made from a dataset file (connectors/reference.py).
FROM_DATASETS = [name for name in BUILTIN if builtin_dataset(name) is not None]


def test_a_built_in_connector_made_from_a_dataset_file_is_named_by_its_entry() -> None:
    """The shipped entry names the built-in's own file, which fits the entry; a worker serves
    it once, as built in (its reference store created), and refuses another file."""
    registry = load_registry(PROJECT_ROOT / "connectors" / "registry.yaml")
    assert FROM_DATASETS, "some reference connector is made from a dataset file"
    served = served_connectors(registry)
    for name in FROM_DATASETS:
        entry = registry.get(name)
        assert entry.dataset_path == builtin_dataset(name)
        assert entry_problems(entry, load_dataset(PROJECT_ROOT / str(entry.dataset))) == []
        assert served.count(name) == 1
    other = registry.get(FROM_DATASETS[0]).model_copy(update={"dataset": LOYALTY_FILE})
    with pytest.raises(RegistryError, match=rf"connector\(s\) {FROM_DATASETS[0]} built in"):
        served_connectors(Registry(connectors=[other]))
    handwritten = [entry.name for entry in registry.connectors
                   if entry.name in BUILTIN and entry.name not in FROM_DATASETS]
    assert all(registry.get(name).dataset is None for name in handwritten)


def test_the_guides_entry_fits_the_guides_file() -> None:
    """The loyalty entry the guide shows (``connectors/README.md``) is the file's."""
    guide = (PROJECT_ROOT / "connectors" / "README.md").read_text()
    block = re.search(r"```yaml\n(  - name: loyalty\n.*?)```", guide, re.DOTALL)
    assert block is not None
    entry = ConnectorEntry.model_validate(yaml.safe_load(block.group(1))[0])
    dataset = load_dataset(PROJECT_ROOT / LOYALTY_FILE)
    assert entry.dataset_path == PROJECT_ROOT / LOYALTY_FILE
    assert entry_problems(entry, dataset) == []


def test_the_entry_builds_its_dataset_connector(
        loyalty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSR_CONNECTOR_LOYALTY_URL", loyalty_url)
    settings = settings_for(tmp_path, registry_with(
        tmp_path, operations=["discover", "access", "erase", "restrict", "locate", "sweep"]))
    built: Any = build_connector("loyalty", settings, LocalBlobStore(tmp_path / "blobs"))
    try:
        assert (built.name, built.categories) == ("loyalty", ("loyalty_points",))
        assert built.activities == ("discover", "access", "erase", "restrict", "locate",
                                    "sweep")
        assert built.warnings == []
    finally:
        built.store.engine.dispose()
    with pytest.raises(KeyError, match="neither built in nor made from a dataset file"):
        build_connector("loyalty", settings_for(tmp_path, registry_with(tmp_path,
                                                                        dataset=None)),
                        LocalBlobStore(tmp_path / "blobs"))


# --- refusing to start ------------------------------------------------------------------------


@pytest.fixture
def worker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSR_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DSR_SETTINGS_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DSR_TEMPORAL_ADDRESS", "127.0.0.1:9")  # never reached


def start(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], registry: Path,
          url: str, *args: str) -> str:
    """``python worker.py ARGS``, which must refuse to start; what it says."""
    monkeypatch.setenv("DSR_CONNECTOR_REGISTRY", str(registry))
    monkeypatch.setenv("DSR_CONNECTOR_LOYALTY_URL", url)
    assert worker.main(list(args)) == 2
    return capsys.readouterr().err


@pytest.mark.usefixtures("worker_env")
def test_a_worker_refuses_a_dataset_unlike_its_database_and_entry(
        loyalty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The file names a column the table lacks; the entry lists a category it does not hold
    and an identity type no column holds: all of it listed, naming no stored value."""
    dataset = loyalty_file(tmp_path, "points: {category", "balance: {category")
    registry = registry_with(tmp_path, dataset=str(dataset), identity_types=["email", "phone"],
                             categories=["loyalty_points", "rewards"])
    said = start(monkeypatch, capsys, registry, loyalty_url, "--connector", "loyalty")
    assert said.startswith("refusing to start: dataset loyalty: 3 problem(s):\n")
    assert said.splitlines()[1:] == [
        "- category rewards: in the registry entry, not held by the dataset",
        "- identity type phone: in the registry entry, held by no column of the dataset",
        "- points.balance: no such column"]
    assert EMAIL not in said and "acct-a" not in said


@pytest.mark.usefixtures("worker_env")
def test_a_worker_refuses_an_operation_the_dataset_cannot_do(
        loyalty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    registry = registry_with(tmp_path, operations=["discover", "erase", "object"])
    said = start(monkeypatch, capsys, registry, loyalty_url, "--connector", "loyalty")
    assert said.splitlines() == [
        "refusing to start: dataset loyalty: 1 problem(s):",
        "- operation object: the dataset connector cannot do it (no column of the dataset is "
        "flagged object)"]
    group = loyalty_file(tmp_path, "role: end_user", "role: group")
    registry = registry_with(tmp_path, dataset=str(group), role="group",
                             operations=["discover", "locate"])
    said = start(monkeypatch, capsys, registry, loyalty_url, "--connector", "loyalty")
    assert said.splitlines()[1:] == [
        "- operation locate: the dataset connector cannot do it (the group's own data "
        "belongs to no customer to locate)"]


@pytest.mark.usefixtures("worker_env")
def test_a_worker_refuses_a_missing_file_or_an_unknown_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'loyalty.db'}"
    registry = registry_with(tmp_path, dataset=str(tmp_path / "absent.yaml"))
    said = start(monkeypatch, capsys, registry, url, "--connector", "loyalty")
    assert said.splitlines() == ["refusing to start: dataset loyalty: 1 problem(s):",
                                 "- absent.yaml: FileNotFoundError"]
    said = start(monkeypatch, capsys, registry, url, "--connector", "points")
    assert said.startswith("unknown connector(s): points; known: sms, ")
    assert said.rstrip().endswith(", marketing, loyalty")


def test_a_category_the_entry_leaves_out_is_refused(loyalty_url: str, tmp_path: Path) -> None:
    """The orchestrator would never send it; the affiliate's rows are left as they were."""
    settings = settings_for(tmp_path, registry_with(tmp_path, categories=[]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DSR_CONNECTOR_LOYALTY_URL", loyalty_url)
        with pytest.raises(DatasetError) as error:
            build_connector("loyalty", settings, LocalBlobStore(tmp_path / "blobs"))
    assert error.value.problems == [
        "category loyalty_points: held by the dataset, not in the registry entry (it would "
        "never be erased or swept)"]
    check: Engine = create_engine(loyalty_url)
    with check.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM points").scalar() == 1
    check.dispose()


def test_an_entry_keeping_countries_needs_a_country_column() -> None:
    """Sweep rules confined to countries reach rows only by a country column: an entry that
    says its store keeps the country, over a file that keeps none, is refused."""
    dataset = load_dataset(PROJECT_ROOT / LOYALTY_FILE)
    entry = ConnectorEntry.model_validate(loyalty_entry("dsr-connector-loyalty",
                                                        keeps_country=True))
    assert entry_problems(entry, dataset) == [
        "registry entry loyalty: keeps_country, but no table of the dataset declares a "
        "country_column"]
