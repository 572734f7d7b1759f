"""Curvature tests run on tiny tensors: one thread is faster and immune to OpenMP spin-waits on a busy machine."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
