"""Fixtures for the mapping and policy tests."""

from __future__ import annotations

import pytest

from mappings.model import DEFAULT_MAPPING_PATH, Mapping, load_mapping


@pytest.fixture(scope="session")
def mapping() -> Mapping:
    """The shipped mapping, holding the policy's defaults."""
    return load_mapping(DEFAULT_MAPPING_PATH)
