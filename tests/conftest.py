import pytest
import torch

from canu_core.data.catalog import load_dataset
from canu_core.reproducibility import set_threads


@pytest.fixture(autouse=True)
def same_threads_after():
    """open_run sets the process's thread count: give the next tests the count they started with."""
    threads = torch.get_num_threads()
    yield
    set_threads(threads)


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    """A fresh outputs/ folder for the test's run folders (CANU_OUTPUTS), kept out of the repository."""
    monkeypatch.setenv("CANU_OUTPUTS", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory):
    """A data root holding the tiny source and target worlds, generated once per test session."""
    root = tmp_path_factory.mktemp("data")
    load_dataset("synthetic:tiny", root)
    load_dataset("synthetic:tiny_target", root)
    return root


def pytest_collection_modifyitems(items):
    """Tests that start kernels or processes (marked `notebook`) first: under pytest-xdist the long modules then
    start early and the short ones fill the end, instead of a long module running alone on one core at the end."""
    items.sort(key=lambda item: item.get_closest_marker("notebook") is None)
