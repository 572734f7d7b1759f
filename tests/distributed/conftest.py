"""Distributed tests: tiny tensors, one thread per process (the machine has 2 cores and the 2-rank tests
run two processes)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
