"""The access and portability package (``activities/package.py``)."""

from __future__ import annotations

from pydantic import BaseModel

from activities.interfaces import ActivityInterface
from dsr.connector_contract import AccessResult
from dsr.models import Language


class PackageInput(BaseModel):
    request_id: str
    language: Language
    exports: list[AccessResult]


class Package(BaseModel):
    blob_ref: str
    records: int


ASSEMBLE_PACKAGE = ActivityInterface[PackageInput, Package](
    name="package.assemble", input=PackageInput, output=Package
)
