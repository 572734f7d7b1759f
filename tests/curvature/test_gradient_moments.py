"""Gradient second moment M and covariance C against dense constructions from explicit per-example gradients.

The reference (cases.reference_per_example_gradients) differentiates each example's loss with
torch.autograd.functional.jacobian on a separately prepared copy of the model: no hessdyn code.
"""

import pytest
import torch
import torch.nn.functional as F

from hessdyn.curvature import (
    CovarianceOperator,
    EmpiricalRisk,
    HessianMode,
    PerSampleGradientsUndefined,
    SecondMomentOperator,
    dense_matrix,
)
from hessdyn.solvers import eigsh_topk, hutchinson

from .cases import (
    BN,
    CONV_BN,
    MLPS,
    assert_unchanged,
    data,
    image_data,
    reference_per_example_gradients,
    snapshot,
)

BACKENDS = ["double_vjp", "jvp", "per_sample"]
TANH, RELU = MLPS[0], MLPS[1]


def uneven_weights(n: int, seed: int = 3) -> torch.Tensor:
    """Weights spread over two orders of magnitude, one of them zero, summing to 1."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(n, generator=gen, dtype=torch.float64).pow(4)
    w[2] = 0.0
    return w / w.sum()


def reference_moments(G: torch.Tensor, w: torch.Tensor, shift: torch.Tensor | None = None):
    """Dense M = Σ w_n g_n g_nᵀ and C = M − ḡḡᵀ from the rows g_n of G (each shifted by `shift`)."""
    if shift is not None:
        G = G + shift
    M = (G.T * w) @ G
    mean = w @ G
    return M, M - torch.outer(mean, mean), mean


def case_data(case):
    return image_data() if case is CONV_BN else data()


def close(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-10) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=rel * float(expected.abs().max()))


def check_products(op, expected: torch.Tensor, seed: int = 0) -> None:
    """op applied to a random block of 6 vectors and to one vector equals the dense matrix times them:
    a wrong operator passes with probability zero, at 7 products instead of P."""
    gen = torch.Generator().manual_seed(seed)
    V = torch.randn(op.size, 6, generator=gen, dtype=torch.float64)
    close(op.matmat(V), expected @ V)
    close(op.matvec(V[:, 0]), expected @ V[:, 0])


@pytest.mark.parametrize("weighting", ["uniform", "uneven"])
@pytest.mark.parametrize("chunk_size", [None, 5])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", [TANH, RELU, CONV_BN], ids=lambda c: c.name)
def test_moments_equal_dense_construction(case, backend, chunk_size, weighting):
    model = case.build()
    x, y = case_data(case)
    n = x.shape[0]
    w = torch.full((n,), 1.0 / n, dtype=torch.float64) if weighting == "uniform" else uneven_weights(n)
    M, C, _ = reference_moments(reference_per_example_gradients(model, x, y), w)
    risk = EmpiricalRisk(model, x, y, sample_weights=None if weighting == "uniform" else w)
    check_products(SecondMomentOperator(risk, backend=backend, chunk_size=chunk_size), M)
    check_products(CovarianceOperator(risk, backend=backend, chunk_size=chunk_size), C)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_whole_matrix_equals_the_dense_construction(backend):
    model = TANH.build()
    x, y = data()
    w = uneven_weights(x.shape[0])
    M, C, _ = reference_moments(reference_per_example_gradients(model, x, y), w)
    risk = EmpiricalRisk(model, x, y, sample_weights=w)
    close(dense_matrix(SecondMomentOperator(risk, backend=backend)), M)
    close(dense_matrix(CovarianceOperator(risk, backend=backend)), C)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_and_single_example_chunks_change_nothing(backend):
    model = TANH.build()
    x, y = data()
    w = uneven_weights(x.shape[0])
    M, C, _ = reference_moments(reference_per_example_gradients(model, x, y), w)
    for batch_size, chunk_size in [(7, None), (7, 3), (None, 1)]:
        risk = EmpiricalRisk(model, x, y, sample_weights=w, batch_size=batch_size)
        check_products(SecondMomentOperator(risk, backend=backend, chunk_size=chunk_size), M)
        check_products(CovarianceOperator(risk, backend=backend, chunk_size=chunk_size), C)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_decay_shifts_every_gradient(backend):
    """With L2 coefficient c every stochastic gradient is g_n + c·θ: M changes, C does not."""
    model = RELU.build()
    x, y = data()
    w = uneven_weights(x.shape[0])
    mode = HessianMode(weight_decay=0.3, decayed=("0",))
    risk = EmpiricalRisk(model, x, y, sample_weights=w, mode=mode)
    theta = risk.flat_params()
    shift = 0.3 * risk.layout.mask(["0"]) * theta
    M, C, mean = reference_moments(reference_per_example_gradients(model, x, y), w, shift)
    second_moment = SecondMomentOperator(risk, backend=backend)
    check_products(second_moment, M)
    check_products(CovarianceOperator(risk, backend=backend), C)
    close(second_moment.mean_gradient, mean, rel=1e-12)


def test_products_are_symmetric_positive_semidefinite_and_rank_limited():
    """C has rank <= N − 1 (the centred gradients sum to zero): P = 99 > N = 24 leaves a large null space."""
    model = TANH.build()
    x, y = data()
    C = dense_matrix(CovarianceOperator(EmpiricalRisk(model, x, y)))
    close(C, C.T, rel=1e-14)
    eig = torch.linalg.eigvalsh((C + C.T) / 2)
    assert float(eig.min()) > -1e-12 * float(eig.max())
    assert int((eig > 1e-10 * float(eig.max())).sum()) == x.shape[0] - 1


def test_the_mean_gradient_is_the_risk_gradient():
    model = RELU.build()
    x, y = data()
    w = uneven_weights(x.shape[0])
    G = reference_per_example_gradients(model, x, y)
    risk = EmpiricalRisk(model, x, y, sample_weights=w, batch_size=5)
    close(risk.loss_and_gradient().gradient, w @ G, rel=1e-12)
    close(CovarianceOperator(risk).mean_gradient, w @ G, rel=1e-12)


def test_existing_solvers_and_warm_start_work_unchanged():
    model = TANH.build()
    x, y = data()
    risk = EmpiricalRisk(model, x, y)
    _, C, _ = reference_moments(
        reference_per_example_gradients(model, x, y), risk.example_weights(risk.batches[0])
    )
    exact = torch.linalg.eigh(C)
    op = CovarianceOperator(risk)
    top = eigsh_topk(op, 3, tol=1e-9)
    assert top.all_converged
    torch.testing.assert_close(top.eigenvalues, exact.eigenvalues.flip(0)[:3], rtol=1e-8, atol=0)
    warm = eigsh_topk(CovarianceOperator(risk), 3, tol=1e-9, v0=top.eigenvectors)
    assert warm.all_converged and warm.num_hvps < top.num_hvps
    trace = hutchinson(op, 400, seed=1)
    assert abs(trace.trace - float(torch.trace(C))) < 4 * trace.trace_se


def test_batchnorm_on_batch_statistics_is_refused_in_one_line():
    model = BN.build()
    x, y = data()
    risk = EmpiricalRisk(model, x, y, mode=HessianMode(batchnorm="train"))
    for make in (SecondMomentOperator, CovarianceOperator):
        with pytest.raises(PerSampleGradientsUndefined, match=r"analysis\.batchnorm=eval") as err:
            make(risk)
        assert "\n" not in str(err.value)


def test_batchnorm_in_eval_mode_and_train_mode_without_batchnorm_are_fine():
    x, y = data()
    SecondMomentOperator(EmpiricalRisk(BN.build(), x, y, mode=HessianMode(batchnorm="eval")))
    SecondMomentOperator(EmpiricalRisk(TANH.build(), x, y, mode=HessianMode(batchnorm="train")))


def test_a_loss_that_is_not_a_per_example_mean_is_refused():
    x, y = data()

    def summed(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, reduction="sum")

    with pytest.raises(ValueError, match="mean of per-example losses"):
        SecondMomentOperator(EmpiricalRisk(TANH.build(), x, y, loss_fn=summed))


def test_bad_arguments():
    x, y = data()
    risk = EmpiricalRisk(TANH.build(), x, y)
    with pytest.raises(ValueError, match="backend"):
        SecondMomentOperator(risk, backend="vmap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size"):
        SecondMomentOperator(risk, chunk_size=0)


def test_the_callers_model_is_left_alone():
    model = BN.build()
    x, y = data()
    before = snapshot(model)
    risk = EmpiricalRisk(model, x, y)
    for backend in BACKENDS:
        CovarianceOperator(risk, backend=backend).matvec(torch.ones(risk.size, dtype=torch.float64))
    assert_unchanged(model, before)


def test_float32_products_agree_with_float64():
    model = RELU.build()
    x, y = data()
    V = torch.randn(99, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    M64 = SecondMomentOperator(EmpiricalRisk(model, x, y)).matmat(V)
    M32 = SecondMomentOperator(EmpiricalRisk(model, x, y, dtype=torch.float32)).matmat(V)
    assert M32.dtype == torch.float32
    close(M32.double(), M64, rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_parameter_selection_gives_the_sub_block(backend):
    model = RELU.build()
    x, y = data()
    w = uneven_weights(x.shape[0])
    M, C, _ = reference_moments(reference_per_example_gradients(model, x, y), w)
    risk = EmpiricalRisk(model, x, y, sample_weights=w, params=["2"])
    block = slice(36, 36 + 42)  # "2.weight" (6 x 6) and "2.bias" (6) after "0.weight" (6 x 5) and "0.bias"
    check_products(SecondMomentOperator(risk, backend=backend, chunk_size=5), M[block, block])
    check_products(CovarianceOperator(risk, backend=backend), C[block, block])
