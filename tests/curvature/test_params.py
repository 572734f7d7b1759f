"""ParamLayout and Hessian-set selection."""

import pytest
import torch

from hessdyn.curvature import ParamLayout, select_hessian_set

from .cases import MLPS, data


def test_layout_follows_named_parameters_and_round_trips():
    model = MLPS[0].build()
    layout = ParamLayout.from_model(model)
    assert layout.names == tuple(n for n, _ in model.named_parameters())
    assert layout.numel == sum(p.numel() for p in model.parameters())
    assert layout.slices[1] == slice(30, 36) and layout.slice_of("2.weight") == slice(36, 72)
    flat = layout.flatten([p.detach() for p in model.parameters()])
    torch.testing.assert_close(flat, torch.nn.utils.parameters_to_vector(model.parameters()), rtol=0, atol=0)
    for part, p in zip(layout.unflatten(flat), model.parameters(), strict=True):
        assert torch.equal(part, p.detach())
    block = torch.stack([flat, 2 * flat])  # leading dimensions pass through
    assert layout.unflatten(block)[2].shape == (2, 6, 6)
    torch.testing.assert_close(layout.flatten(layout.unflatten(block)), block, rtol=0, atol=0)


def test_selection_by_prefix_and_name_keeps_model_order():
    model = MLPS[0].build()
    layout = ParamLayout.from_model(model, ["4", "0.weight"])
    assert layout.names == ("0.weight", "4.weight", "4.bias")
    mask = layout.mask(["4.bias"])
    assert float(mask.sum()) == 3 and bool(mask[layout.slice_of("4.bias")].all())
    with pytest.raises(ValueError, match="match no trainable parameter"):
        ParamLayout.from_model(model, ["0.weights"])
    with pytest.raises(KeyError, match="names"):
        layout.slice_of("2.weight")


def test_hessian_set_is_a_seeded_sorted_subset():
    x, y = data(n=50)
    a, b = select_hessian_set(x, y, 20, seed=3), select_hessian_set(x, y, 20, seed=3)
    c = select_hessian_set(x, y, 20, seed=4)
    assert torch.equal(a.indices, b.indices) and not torch.equal(a.indices, c.indices)
    assert a.x.shape == (20, x.shape[1]) and bool((a.indices[1:] > a.indices[:-1]).all())
    assert torch.equal(a.x, x[a.indices]) and torch.equal(a.y, y[a.indices])
    assert select_hessian_set(x, y, None).x.shape[0] == 50 and select_hessian_set(x, y, 500).x.shape[0] == 50
