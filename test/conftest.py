"""Shared fixtures: the RoadScene folder ($SGDFUSE_DATA, else ../shared/data/roadscene)."""

import pytest

from sgdfuse_ros.dataset import default_data_dir


@pytest.fixture(scope="session")
def roadscene():
    path = default_data_dir()
    if path is None or not (path / "ir").is_dir():
        pytest.skip("RoadScene data not found: set SGDFUSE_DATA to the roadscene folder")
    return path
