"""The shipped mapping as a YAML document, and variants of it, for tests."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import yaml

from mappings.model import DEFAULT_MAPPING_PATH, Mapping, parse_mapping


@cache
def _shipped() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_MAPPING_PATH.read_text(encoding="utf-8"))


def shipped_document() -> dict[str, Any]:
    """A fresh, freely editable copy of the shipped mapping document."""
    return copy.deepcopy(_shipped())


def mapping_with(policy: dict[str, Any] | None = None, **certification: Any) -> Mapping:
    """The shipped mapping with ``policy`` settings and, for every entitlement,
    ``certification`` settings replaced."""
    return _variant(tuple(sorted((policy or {}).items())), tuple(sorted(certification.items())))


@cache
def _variant(policy: tuple[tuple[str, Any], ...], certification: tuple[tuple[str, Any], ...]) -> Mapping:
    document = shipped_document()
    document["policy"].update(dict(policy))
    for entitlement in document["entitlements"].values():
        entitlement["certification"].update(dict(certification))
    return parse_mapping(document, "variant")
