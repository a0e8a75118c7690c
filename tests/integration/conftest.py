import pytest


@pytest.fixture(autouse=True)
def _ticketed(basic_box):
    """Every CLI run in these tests is on a box holding a Basic ticket (paid jobs allowed)."""
    return basic_box
