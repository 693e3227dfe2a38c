import pytest

from canu_core.data.catalog import load_dataset


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory):
    """A data root holding the tiny source and target worlds, generated once per test session."""
    root = tmp_path_factory.mktemp("data")
    load_dataset("synthetic:tiny", root)
    load_dataset("synthetic:tiny_target", root)
    return root
