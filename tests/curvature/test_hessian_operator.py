"""Hessian-vector products against an independent dense Hessian, in every mode and back end."""

import pytest
import torch

from hessdyn.curvature import (
    DiagonalConjugate,
    EmpiricalRisk,
    HessianMode,
    HessianOperator,
    cast_model,
    curvature_operator,
    dense_matrix,
    exact_diagonal,
    flat_gradient,
)

from .cases import ALL, BN, DROPOUT, MLPS, data, reference_gradient, reference_hessian

BACKENDS = ["double_backward", "forward_over_reverse"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", [*MLPS, DROPOUT], ids=lambda c: c.name)
def test_hvp_equals_dense_hessian_times_v(case, backend):
    model = case.build()
    x, y = data()
    H = reference_hessian(model, x, y)
    op = curvature_operator(model, x, y, backend=backend)
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(op.size, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(op.matvec(v), H @ v, rtol=0, atol=1e-10 * float(H.abs().max()))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batchnorm", ["eval", "train"])
def test_batchnorm_modes_match_their_reference(batchnorm, backend):
    model = BN.build()
    x, y = data()
    H = reference_hessian(model, x, y, batchnorm=batchnorm)
    op = curvature_operator(model, x, y, mode=HessianMode(batchnorm=batchnorm), backend=backend)
    torch.testing.assert_close(dense_matrix(op), H, rtol=0, atol=1e-10 * float(H.abs().max()))


def test_batchnorm_modes_differ():
    model = BN.build()
    x, y = data()
    h_eval = dense_matrix(curvature_operator(model, x, y, mode=HessianMode(batchnorm="eval")))
    h_train = dense_matrix(curvature_operator(model, x, y, mode=HessianMode(batchnorm="train")))
    assert float((h_eval - h_train).abs().max()) > 1e-3 * float(h_eval.abs().max())


def test_batchnorm_train_mode_uses_per_batch_statistics():
    """In "train" mode a batched Hessian is the weighted sum of per-batch Hessians, each with its own stats."""
    model = BN.build()
    x, y = data()
    op = curvature_operator(model, x, y, mode=HessianMode(batchnorm="train"), batch_size=10)
    expected = sum(
        reference_hessian(model, x[i : i + 10], y[i : i + 10], batchnorm="train")
        * (len(x[i : i + 10]) / len(x))
        for i in range(0, len(x), 10)
    )
    torch.testing.assert_close(dense_matrix(op), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_batch_size_does_not_change_the_hessian(case, backend):
    model = case.build()
    x, y = data()
    full = dense_matrix(curvature_operator(model, x, y, backend=backend))
    for batch_size in (1, 5, 7):
        part = dense_matrix(curvature_operator(model, x, y, batch_size=batch_size, backend=backend))
        torch.testing.assert_close(part, full, rtol=0, atol=1e-10 * float(full.abs().max()))


@pytest.mark.parametrize("batch_size", [None, 7])
@pytest.mark.parametrize("backend", BACKENDS)
def test_block_product_equals_column_products(backend, batch_size):
    model = MLPS[1].build()
    x, y = data()
    op = curvature_operator(model, x, y, backend=backend, batch_size=batch_size)
    V = torch.randn(op.size, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    block = op.matmat(V)
    assert op.num_hvps == 4
    columns = torch.stack([op.matvec(V[:, i]) for i in range(4)], dim=1)
    assert op.num_hvps == 8
    torch.testing.assert_close(block, columns, rtol=0, atol=1e-13)


def test_kept_gradient_graph_gives_the_same_products():
    model = MLPS[0].build()
    x, y = data()
    risk = EmpiricalRisk(model, x, y)
    cached, fresh = HessianOperator(risk), HessianOperator(risk, cache_graph=False)
    assert cached.cache_graph and not fresh.cache_graph
    V = torch.randn(risk.size, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    first = cached.matmat(V)
    torch.testing.assert_close(cached.matmat(V), first, rtol=0, atol=0)  # the kept graph is reusable
    torch.testing.assert_close(fresh.matmat(V), first, rtol=0, atol=1e-14)


def test_dense_matrix_equals_autograd_functional_hessian():
    model = MLPS[2].build()
    x, y = data()
    op = curvature_operator(model, x, y)
    H = dense_matrix(op)
    ref = reference_hessian(model, x, y)
    assert op.num_hvps == op.size
    torch.testing.assert_close(H, ref, rtol=0, atol=1e-12 * float(ref.abs().max()))
    assert float((H - H.T).abs().max()) < 1e-14


@pytest.mark.parametrize("select", [["0"], ["2.weight", "4"]])
def test_parameter_block_is_the_block_of_the_full_hessian(select):
    model = MLPS[0].build()
    x, y = data()
    full = dense_matrix(curvature_operator(model, x, y))
    full_layout = curvature_operator(model, x, y).layout
    op = curvature_operator(model, x, y, params=select)
    idx = torch.cat([torch.arange(full_layout.numel)[full_layout.slice_of(n)] for n in op.layout.names])
    assert op.layout.names == tuple(n for n in full_layout.names if n in op.layout.names)
    torch.testing.assert_close(dense_matrix(op), full[idx][:, idx], rtol=0, atol=1e-14)


def test_weight_decay_adds_its_hessian_only_on_decayed_parameters():
    model = MLPS[0].build()
    x, y = data()
    plain = dense_matrix(curvature_operator(model, x, y))
    mode = HessianMode(weight_decay=0.1, decayed=("0.weight",))
    op = curvature_operator(model, x, y, mode=mode)
    mask = torch.zeros(op.size, dtype=torch.float64)
    mask[op.layout.slice_of("0.weight")] = 1
    torch.testing.assert_close(dense_matrix(op), plain + 0.1 * torch.diag(mask), rtol=0, atol=1e-14)
    theta = op.risk.flat_params()
    g = flat_gradient(model, x, y, mode=mode)
    torch.testing.assert_close(g, reference_gradient(model, x, y) + 0.1 * mask * theta, rtol=0, atol=1e-14)


@pytest.mark.parametrize("batch_size", [None, 5])
def test_flat_gradient_is_the_mean_loss_gradient(batch_size):
    model = BN.build()
    x, y = data()
    g = flat_gradient(model, x, y, batch_size=batch_size)
    torch.testing.assert_close(g, reference_gradient(model, x, y), rtol=0, atol=1e-14)


def test_diagonal_conjugate_is_d_h_d():
    model = MLPS[0].build()
    x, y = data()
    op = curvature_operator(model, x, y)
    H = dense_matrix(op)
    d = torch.rand(op.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1
    conj = DiagonalConjugate(op, d)
    before = op.num_hvps
    torch.testing.assert_close(dense_matrix(conj), d[:, None] * H * d[None, :], rtol=0, atol=1e-14)
    assert conj.num_hvps == op.num_hvps == before + op.size
    with pytest.raises(ValueError, match="non-negative"):
        DiagonalConjugate(op, d - 1)
    d[3] = 0.0  # a zero entry projects the coordinate out
    torch.testing.assert_close(
        dense_matrix(DiagonalConjugate(op, d)), d[:, None] * H * d[None, :], rtol=0, atol=1e-14
    )


def test_float32_operator_from_a_float64_model():
    model = MLPS[2].build()
    x, y = data()
    H = reference_hessian(model, x, y)
    op = curvature_operator(model, x, y, dtype=torch.float32)
    assert op.dtype == torch.float32 and next(model.parameters()).dtype == torch.float64
    v = torch.randn(op.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = op.matvec(v)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), H @ v, rtol=0, atol=1e-5 * float((H @ v).abs().max()))


def test_cast_model_returns_a_converted_copy():
    model = MLPS[0].build().float()
    copy64 = cast_model(model, torch.float64)
    assert next(copy64.parameters()).dtype == torch.float64
    assert next(model.parameters()).dtype == torch.float32
    assert next(copy64.parameters()).data_ptr() != next(model.parameters()).data_ptr()


def test_errors_name_the_fix():
    model = MLPS[0].build()
    x, y = data()
    with pytest.raises(ValueError, match="valid names: 0.weight"):
        curvature_operator(model, x, y, params=["layer9"])
    with pytest.raises(ValueError, match="dropout"):
        HessianMode(dropout=True)
    with pytest.raises(ValueError, match="batchnorm"):
        HessianMode(batchnorm="running")
    with pytest.raises(ValueError, match="curvature"):
        curvature_operator(model, x, y, curvature="fisher")
    with pytest.raises(ValueError, match="examples"):
        curvature_operator(model, x, y[:-1])
    op = curvature_operator(model, x, y)
    with pytest.raises(ValueError, match="matvec expects"):
        op.matvec(torch.zeros(op.size + 1))


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_exact_diagonal_is_the_reference_hessian_diagonal(chunk):
    model = MLPS[0].build()
    x, y = data()
    H = reference_hessian(model, x, y)
    op = curvature_operator(model, x, y)
    diag = exact_diagonal(op, chunk=chunk)
    torch.testing.assert_close(diag, H.diagonal(), rtol=0, atol=1e-10 * float(H.abs().max()))
    assert op.num_hvps == op.size
