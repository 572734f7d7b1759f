"""Every table hessdyn writes, with its columns, units and valid domains: the one list the writers, the
report, the tests' fake runs and docs/design.md follow.

Units: ``L`` is the loss (mean cross-entropy, nats), ``θ`` a parameter's unit, so eigenvalues are
``L/θ²`` and a learning rate ``θ²/L`` (``η·λ`` is dimensionless). Ranks are 1-based everywhere.

A new metric group registers its table here with one :func:`register_table` call (see the module
docstring of :mod:`hessdyn.store.schema`); columns that another table already defines are reused.
"""

from __future__ import annotations

from hessdyn.store.schema import (
    DISPLACEMENT,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    Column,
    Table,
    register_metrics,
    register_table,
)

# ---------------------------------------------------------------------------------- shared columns
STEP = Column("step", "steps", "training step: the weights after this many optimizer updates", "int")
EPOCH = Column("epoch", "epochs", "step / steps per epoch")
RANK = Column("rank", "", "rank of the eigenpair (1 = the largest; bottom rows: 1 = the smallest)", "rank")
LOSS = Column("loss", "L", "mean cross-entropy", domain=POSITIVE)
LR = Column("lr", "θ²/L", "learning rate of the update taken at this step (after the schedule)")
WALL_S = Column("wall_s", "s", "wall-clock seconds")
EIGENVALUE = Column("eigenvalue", "L/θ²", "Hessian eigenvalue", domain=POSITIVE)
LAMBDA_MAX = Column("lambda_max", "L/θ²", "largest Hessian eigenvalue", domain=POSITIVE)
TRACE = Column("trace", "L/θ²", "tr(H) (Hutch++ estimate; exact on the dense path)", domain=POSITIVE)
MASS = Column("mass", "fraction", "share of the eigenvector's squared mass", domain=FRACTION)
PARAM = Column("param", "", "parameter tensor name (model.named_parameters())", "text")
IPR = Column("ipr", "1", "inverse participation ratio Σ v_j⁴ of the unit eigenvector")
IPR_NORMALIZED = Column(
    "ipr_normalized", "1", "P·IPR/3: about 1 for a random unit vector, larger when localized", domain=POSITIVE
)
CONVERGED = Column("converged", "", "the eigenpair reached the tolerance (tol·|λ1|)", "bool")
THETA_H_THETA = Column("theta_h_theta", "L", "θᵀHθ (α-invariant)", domain=POSITIVE)
STEP_A = Column("step_a", "steps", "earlier checkpoint of the pair", "int")
STEP_B = Column("step_b", "steps", "later checkpoint of the pair", "int")

# ------------------------------------------------------------------------------------ training run
TRAIN = register_table(
    Table(
        "train",
        "metrics",
        "one row per (step, split, source)",
        (
            STEP,
            EPOCH,
            Column("split", "", "train | test", "text"),
            Column(
                "source",
                "",
                "batch: mean over the minibatches since the previous batch row (computed before each "
                "update); eval: the whole split in eval mode",
                "text",
            ),
            LOSS,
            Column("accuracy", "fraction", "fraction of correct argmax predictions", domain=FRACTION),
            LR,
            Column(
                "grad_norm",
                "L/θ",
                "norm of the gradient the update used, of loss + penalty (SAM: at w, before its perturbation)",
            ),
            Column("update_norm", "θ", "norm of the parameter change of the update (batch rows)"),
            Column("param_norm", "θ", "norm of the parameter vector"),
            WALL_S,
            Column(
                "penalty",
                "L",
                "the regularizer's term added to the loss, β·U_WS of the minibatch Hessian (regularizer=hsr; "
                "batch rows, averaged like loss, which stays the data loss alone); empty without a regularizer",
                domain=NON_NEGATIVE,
            ),
            Column(
                "batch_ws_bound",
                "L/θ²",
                "U_WS = μ + s·sqrt(P−1), the exact Wolkowicz–Styan bound on λmax of the minibatch Hessian "
                "behind the penalty (regularizer=hsr; batch rows, averaged like loss)",
                domain=POSITIVE,
            ),
        ),
    )
)

SHARPNESS = register_table(
    Table(
        "sharpness",
        "metrics",
        "the training-time sharpness probe (trainer.sharpness): one row per (step, operator, rank), the top "
        "eigenpairs of the training loss's Hessian on the fixed probe set at the weights the checkpoint of "
        "that step holds, each probe warm-started from the previous one",
        (
            STEP,
            Column(
                "operator",
                "",
                "hessian: H of the loss as trained (batch statistics, no dropout, the optimizer's coupled weight "
                "decay included); preconditioned: P^-1/2 H P^-1/2 with Adam's bias-corrected P (Cohen et al. 2022) "
                "or RMSprop's",
                "text",
            ),
            RANK,
            Column(
                "eigenvalue",
                "L/θ² | 1/η",
                "eigenvalue of the operator (L/θ² for hessian, 1/η for preconditioned)",
                domain=POSITIVE,
            ),
            Column("residual", "L/θ² | 1/η", "||Av − λv|| of the returned pair (same unit as eigenvalue)"),
            Column("converged", "", "the pair reached the tolerance (trainer.sharpness.tol · |λ1|)", "bool"),
            Column(
                "hvps",
                "products",
                "Hessian-vector products this probe spent on this operator (all its ranks; guard included)",
                "int",
            ),
            Column(
                "threshold",
                "L/θ² | 1/η",
                "the optimizer's stability threshold for rank 1 of this operator at lr: 2/lr (SGD), "
                "(2+2β)/lr (momentum) on hessian rows; (2+2β1)/((1−β1)lr) (Adam), (2+2m)/lr (RMSprop) on "
                "preconditioned rows; empty where none applies",
                domain=POSITIVE,
            ),
            Column("lr", "θ²/L", "learning rate of the next update, the one the threshold is for"),
            Column("wall_s", "s", "wall-clock seconds of this probe's solve for this operator"),
        ),
    )
)

# ------------------------------------------------------------------------------- analysis, per step
SPECTRUM = register_table(
    Table(
        "spectrum",
        "analysis",
        "top-k (and bottom) eigenpairs of each checkpoint",
        (
            STEP,
            Column("which", "", "top | bottom", "text"),
            RANK,
            EIGENVALUE,
            Column("residual", "L/θ²", "||Hv − λv||"),
            Column("rel_residual", "1", "residual / |λ1|"),
            CONVERGED,
            IPR,
            IPR_NORMALIZED,
            Column("count_50", "entries", "fewest entries holding 50% of the squared mass", "int"),
            Column("count_90", "entries", "fewest entries holding 90% of the squared mass", "int"),
        ),
        group="spectrum",
        per="step",
        always=True,
    )
)

LAYER_MASS = register_table(
    Table(
        "layer_mass",
        "analysis",
        "share of each top eigenvector's squared mass per parameter tensor (sums to 1 over param)",
        (STEP, RANK, PARAM, MASS),
        group="localization",
        per="step",
    )
)

SUMMARY = register_table(
    Table(
        "summary",
        "analysis",
        "one row per checkpoint",
        (
            STEP,
            EPOCH,
            Column(
                "lambda_max",
                "L/θ²",
                "largest Hessian eigenvalue, in the analysis' Hessian mode (analysis.batchnorm; eval: the "
                "trained function's geometry)",
                domain=POSITIVE,
            ),
            Column("lambda_min", "L/θ²", "smallest eigenvalue (bottom group or dense path)"),
            TRACE,
            Column("trace_se", "L/θ²", "standard error of the trace estimate", domain=NON_NEGATIVE),
            Column("trace_sq", "L²/θ⁴", "tr(H²)"),
            Column("trace_sq_se", "L²/θ⁴", "standard error of tr(H²)"),
            Column(
                "ws_bound", "L/θ²", "Wolkowicz–Styan upper bound μ + s·sqrt(P−1) on λmax", domain=POSITIVE
            ),
            Column("ws_bound_se", "L/θ²", "its delta-method standard error", domain=NON_NEGATIVE),
            Column("ws_lower", "L/θ²", "Wolkowicz–Styan lower bound μ + s/sqrt(P−1) on λmax"),
            Column(
                "lambda_max_over_ws", "1", "λmax / ws_bound (≤ 1 up to estimation error)", domain=POSITIVE
            ),
            Column(
                "trace_exact",
                "L/θ²",
                "tr(H) from the closed form of the three_layer net (exact; same Hessian set and mode; "
                "model=three_layer, curvature=hessian only)",
                domain=POSITIVE,
            ),
            Column("trace_sq_exact", "L²/θ⁴", "tr(H²) from the same closed form (exact)", domain=POSITIVE),
            Column(
                "ws_bound_exact",
                "L/θ²",
                "Wolkowicz–Styan upper bound μ + s·sqrt(P−1) from the exact traces",
                domain=POSITIVE,
            ),
            Column(
                "ws_lower_exact", "L/θ²", "Wolkowicz–Styan lower bound μ + s/sqrt(P−1) from the exact traces"
            ),
            Column(
                "lambda_max_over_ws_exact",
                "1",
                "λmax / ws_bound_exact (≤ 1 up to λmax's tolerance)",
                domain=POSITIVE,
            ),
            Column("loss", "L", "loss on the Hessian set, in the Hessian mode", domain=POSITIVE),
            Column("grad_norm", "L/θ", "norm of the gradient of that loss"),
            Column("lr", "θ²/L", "learning rate at the checkpoint"),
            Column(
                "sharpness_lr",
                "1",
                "lr · λmax of the loss as trained: lambda_max_trained where recorded, else lambda_max",
            ),
            Column(
                "stability_mode",
                "",
                "the Hessian sharpness_lr and precond_lambda_max are of: analysis (the analysis' own, "
                "lambda_max: no batch norm, or analysis.batchnorm=train with the training batch size) | "
                "batch_statistics (lambda_max_trained)",
                "text",
            ),
            Column(
                "lambda_max_trained",
                "L/θ²",
                "λmax of the loss as trained, for batch-norm nets: batch norm on the statistics of each batch "
                "of trainer.batch_size examples of the Hessian set (the Hessian SGD steps on); empty where it "
                "is the analysis' own Hessian",
                domain=POSITIVE,
            ),
            Column("lambda_max_trained_converged", "", "lambda_max_trained reached the tolerance", "bool"),
            Column(
                "stability_threshold",
                "L/θ²",
                "2/lr (SGD), (2+2β)/lr (momentum), empty for adaptive optimizers",
                domain=POSITIVE,
            ),
            Column(
                "precond_lambda_max",
                "1/η",
                "λmax of the preconditioned Hessian P^-1/2 H P^-1/2 (Adam, RMSprop), H of the loss as trained "
                "(see stability_mode)",
                domain=POSITIVE,
            ),
            Column(
                "precond_threshold",
                "1/η",
                "(2+2β1)/((1−β1)lr) for Adam, (2+2m)/lr for RMSprop; empty otherwise",
                domain=POSITIVE,
            ),
            Column(
                "grad_alignment", "fraction", "||P_k g||²/||g||² in the top-k eigenspace", domain=FRACTION
            ),
            Column(
                "update_alignment",
                "fraction",
                "the same for θ − θ_previous in the previous checkpoint's top-k space",
                domain=FRACTION,
            ),
            Column("hvps", "products", "Hessian-vector products spent on this checkpoint", "int"),
            Column("wall_s", "s", "wall-clock seconds of this checkpoint's analysis"),
            Column("n_converged", "eigenpairs", "converged top eigenpairs", "int"),
            Column("all_converged", "", "every top eigenpair converged", "bool"),
            Column("hessian_set_size", "examples", "examples in the Hessian set", "int"),
            Column("num_params", "parameters", "P, the number of trainable parameters", "int"),
            Column("precond_converged", "", "precond_lambda_max reached the tolerance", "bool"),
            Column("ws_bound_hi", "L/θ²", "upper end of the bound's interval from the trace errors"),
            Column(
                "ws_variance_clipped",
                "",
                "the estimated spectral variance was negative, clipped at 0",
                "bool",
            ),
        ),
        per="step",
        always=True,
    )
)

TOP_PARAMS = register_table(
    Table(
        "top_params",
        "analysis",
        "the heaviest entries of the leading eigenvectors (ranks 1–3, 10 entries each)",
        (
            STEP,
            RANK,
            Column("position", "", "position among the heaviest entries (1 = the heaviest)", "rank"),
            Column("index", "", "0-based index into the flat parameter vector θ", "int"),
            PARAM,
            Column("entry", "", "0-based index inside the tensor, e.g. (3, 17)", "text"),
            Column("value", "1", "signed component v_j of the unit eigenvector"),
            MASS,
        ),
        group="localization",
        per="step",
    )
)

DENSITY = register_table(
    Table(
        "density",
        "analysis",
        "spectral density by stochastic Lanczos quadrature",
        (
            STEP,
            Column("eigenvalue", "L/θ²", "grid point", domain=POSITIVE),
            Column("density", "θ²/L", "density per unit eigenvalue", domain=NON_NEGATIVE),
        ),
        group="density",
        per="step",
    )
)

NOISE_MATRIX = Column(
    "matrix", "", "covariance: C = Σ_n w_n (g_n − ḡ)(g_n − ḡ)ᵀ; second_moment: M = Σ_n w_n g_n g_nᵀ", "text"
)
NOISE_SPECTRUM = register_table(
    Table(
        "noise_spectrum",
        "analysis",
        "top-k eigenpairs of the per-example gradient covariance C and second moment M over the Hessian set "
        "(g_n the gradient of example n's loss, w_n = 1/N); one example's noise, not a minibatch's",
        (
            STEP,
            NOISE_MATRIX,
            RANK,
            Column("eigenvalue", "L²/θ²", "eigenvalue of C or M", domain=POSITIVE),
            Column("residual", "L²/θ²", "||Av − λv|| for A = C or M"),
            Column("rel_residual", "1", "residual / |λ1| of the same matrix"),
            CONVERGED,
        ),
        group="noise",
        per="step",
    )
)

NOISE = register_table(
    Table(
        "noise",
        "analysis",
        "gradient noise against curvature, one row per checkpoint; H is the analysis' curvature matrix "
        "(analysis.curvature), C and M as in noise_spectrum.csv",
        (
            STEP,
            Column("trace_covariance", "L²/θ²", "tr(C) = Σ_n w_n ||g_n − ḡ||² (exact)", domain=POSITIVE),
            Column("trace_second_moment", "L²/θ²", "tr(M) = tr(C) + ||ḡ||² (exact)", domain=POSITIVE),
            Column(
                "trace_hessian",
                "L/θ²",
                "tr(H) from the same diag(H) as the power-law fit (diagonal: exact, or Bekas = Hutchinson)",
                domain=POSITIVE,
            ),
            Column("trace_hessian_se", "L/θ²", "its standard error (0 when exact)", domain=NON_NEGATIVE),
            Column("diagonal", "", "how diag(H) was computed: exact (P products) | bekas (probes)", "text"),
            Column(
                "covariance_over_hessian",
                "L",
                "tr(C) / tr(H): per-example gradient variance per unit of curvature",
                domain=POSITIVE,
            ),
            Column("top_k", "eigenpairs", "k: eigenpairs of H, C and M compared below", "int"),
            Column(
                "overlap_covariance_hessian",
                "1",
                "||P_C P_H||²_F / k of the top-k spaces of C and H",
                domain=FRACTION,
            ),
            Column(
                "overlap_moment_hessian", "1", "the same for the top-k spaces of M and H", domain=FRACTION
            ),
            Column(
                "random_overlap", "1", "k/P: the overlap of two random k-dimensional spaces", domain=FRACTION
            ),
            Column(
                "commutation",
                "1",
                "||[C, H]||_F / (||C||_F ||H||_F) of C and H restricted to their joint top subspace "
                "(0: they commute there; at most √2)",
                domain=NON_NEGATIVE,
            ),
            Column("commutation_dim", "dimensions", "dimension r ≤ 2k of that joint subspace", "int"),
            Column(
                "noise_fraction_top_k",
                "fraction",
                "tr(Π_k C)/tr(C): share of the gradient noise in H's top-k space; the same for one example's "
                "noise C and a minibatch's (a multiple of C)",
                domain=FRACTION,
            ),
            Column(
                "train_batch_size",
                "examples",
                "B, the run's training batch size (the training split's size N for full batch)",
                "int",
            ),
            Column("train_size", "examples", "N, the run's training-split size", "int"),
            Column(
                "minibatch_noise_trace",
                "L²/θ²",
                "tr(C)·(N − B)/(B(N − 1)): trace of the covariance of a minibatch gradient drawn without "
                "replacement (0 for full batch), with C estimated on the Hessian set",
                domain=NON_NEGATIVE,
            ),
            Column(
                "minibatch_noise_top_k",
                "L²/θ²",
                "the part of minibatch_noise_trace in H's top-k space",
                domain=NON_NEGATIVE,
            ),
            THETA_H_THETA,
            Column(
                "theta2_h_diagonal",
                "L",
                "Σ_i θ_i² H_ii: invariant under every positive diagonal rescaling of θ (not verified to be "
                "Li et al. 2019's measure, see docs/design.md)",
            ),
            Column(
                "theta2_h_diagonal_se",
                "L",
                "its standard error (0 when diag(H) is exact)",
                domain=NON_NEGATIVE,
            ),
            Column("converged_covariance", "eigenpairs", "converged top eigenpairs of C", "int"),
            Column("converged_moment", "eigenpairs", "converged top eigenpairs of M", "int"),
            Column(
                "moment_products", "products", "products of C and M spent (eigensolves, compression)", "int"
            ),
            Column("wall_s", "s", "wall-clock seconds of the noise group at this checkpoint"),
        ),
        group="noise",
        per="step",
    )
)

NOISE_GAMMA = register_table(
    Table(
        "noise_gamma",
        "analysis",
        "the diagonal power law C_ii ∝ H_ii^γ (Zhang, Yang & Tu, arXiv 2602.05600) fitted by least squares "
        "on (ln H_ii, ln C_ii), over all parameters (param = all) and per parameter tensor",
        (
            STEP,
            Column("param", "", "all, or a parameter tensor name (model.named_parameters())", "text"),
            Column("gamma", "1", "fitted exponent γ"),
            Column(
                "gamma_se", "1", "its standard error (entries treated as independent)", domain=NON_NEGATIVE
            ),
            Column("gamma_low", "1", "lower end of the 95% t-interval of γ"),
            Column("gamma_high", "1", "upper end of the 95% t-interval of γ"),
            Column("r_squared", "1", "R² of the fit in log space", domain=FRACTION),
            Column("used", "entries", "entries in the fit (H_ii > 0, C_ii > 0, significant)", "int"),
            Column("entries", "entries", "entries of the tensor (P for all)", "int"),
            Column("nonpositive_curvature", "entries", "entries left out with H_ii ≤ 0", "int"),
            Column("nonpositive_noise", "entries", "entries left out with C_ii ≤ 0 (e.g. dead units)", "int"),
            Column(
                "insignificant",
                "entries",
                "entries left out as within 2 standard errors of 0 (Bekas diagonal only)",
                "int",
            ),
        ),
        group="noise",
        per="step",
    )
)

# -------------------------------------------------------------------------------- analysis, per run
TRAJECTORY = register_table(
    Table(
        "trajectory",
        "analysis",
        "eigenvector motion between checkpoints; per-rank metrics (rank = rank at step_a) for consecutive "
        "checkpoints and every checkpoint against the first and the last, the others (rank empty) for all "
        "pairs step_a < step_b (the two-time form C(t_w, t_w + τ))",
        (
            STEP_A,
            STEP_B,
            Column("metric", "", "one of the trajectory metrics below", "text"),
            RANK,
            Column("value", "", "the metric's value"),
        ),
        group="trajectory",
    )
)

EVENTS = register_table(
    Table(
        "events",
        "analysis",
        "rank changes and near-degenerate clusters between consecutive checkpoints",
        (
            STEP_A,
            STEP_B,
            Column("kind", "", "crossing | cluster", "text"),
            Column("rank_a", "", "rank at step_a (a cluster: its first rank)", "rank"),
            Column("rank_b", "", "rank at step_b (a cluster: its first rank)", "rank"),
            Column(
                "detail",
                "",
                "overlap=… (crossing); ranks_a=…, ranks_b=…, subspace_overlap=… (cluster)",
                "text",
            ),
        ),
        group="trajectory",
    )
)

NULLS = register_table(
    Table(
        "nulls",
        "analysis",
        "null models of the IPR: random unit vectors in R^P and the top eigenvectors at random inits",
        (
            Column("null", "", "random | architecture", "text"),
            Column("seed", "", "the null's seed (analysis.seed; init seed for architecture)", "int"),
            Column("sample", "", "0-based sample index (random vector; init for architecture)", "int"),
            Column("rank", "", "rank of the eigenpair (architecture); empty for random vectors", "rank"),
            IPR,
            IPR_NORMALIZED,
            Column("converged", "", "the eigenpair converged (architecture); empty for random", "bool"),
        ),
        group="localization",
    )
)

REPARAM = register_table(
    Table(
        "reparam",
        "analysis",
        "Dinh et al. α-rescaling at the last analyzed checkpoint: what moves and what does not",
        (
            STEP,
            Column("alpha", "1", "rescaling factor of the first layer (last layer 1/α)"),
            Column("scalings", "", "per-layer factors, space separated", "text"),
            Column("output_diff", "logits", "max |f_α(x) − f(x)| over the Hessian set (≈ 0)"),
            Column("loss", "L", "loss at the rescaled weights, in the Hessian mode", domain=POSITIVE),
            LAMBDA_MAX,
            TRACE,
            Column("eps_sharpness", "%", "Keskar et al. ε-sharpness", domain=NON_NEGATIVE),
            THETA_H_THETA,
            Column("scaled_lambda_max", "L", "λmax of diag|θ| H diag|θ| (α-invariant)", domain=POSITIVE),
        ),
        group="reparam",
    )
)

# ------------------------------------------------------- trajectory.csv metrics and report metrics
TRAJECTORY_METRICS = (
    Column(
        "overlap_matched_plain",
        "1",
        "|⟨v_i(t), w_π(i)(t′)⟩| with π the Hungarian assignment maximizing Σ_i ⟨v_i, w_π(i)⟩²",
        domain=FRACTION,
    ),
    Column(
        "displacement_matched_plain",
        "1",
        "2(1 − overlap_matched_plain): each eigenvector against its one matched vector",
        domain=DISPLACEMENT,
    ),
    Column(
        "overlap_matched_cluster",
        "1",
        "cluster-aware matched overlap: ||P_B v_i|| with B the near-degenerate cluster of π(i) at t′, else "
        "||P_A w_π(i)|| with A that of i at t, else overlap_matched_plain (clusters: neighbour gap and "
        "spread ≤ analysis.cluster_rtol relative; never merged through the assignment)",
        domain=FRACTION,
    ),
    Column(
        "displacement_matched_cluster",
        "1",
        "2(1 − overlap_matched_cluster): a rotation inside a degenerate cluster is not motion",
        domain=DISPLACEMENT,
    ),
    Column("overlap_ranked", "1", "|⟨v_i(t), w_i(t′)⟩|: same rank, no matching", domain=FRACTION),
    Column(
        "displacement_ranked",
        "1",
        "2(1 − overlap_ranked): a crossing shows as motion",
        domain=DISPLACEMENT,
    ),
    Column("subspace_overlap", "1", "||P_a P_b||²_F / k of the top-k spaces", domain=FRACTION),
    Column("grassmann_distance", "rad", "Grassmann distance of the top-k spaces"),
    Column(
        "mean_matched_overlap_plain",
        "1",
        "mean over ranks of overlap_matched_plain (every pair: the two-time form)",
        domain=FRACTION,
    ),
    Column(
        "mean_matched_overlap_cluster",
        "1",
        "mean over ranks of overlap_matched_cluster (every pair: the two-time form)",
        domain=FRACTION,
    ),
)
register_metrics(*TRAJECTORY_METRICS)

REPORT_METRICS = (
    Column("final_train_loss", "L", "train loss at the last evaluation", domain=POSITIVE),
    Column("final_test_loss", "L", "test loss at the last evaluation", domain=POSITIVE),
    Column("final_train_accuracy", "fraction", "train accuracy at the last evaluation", domain=FRACTION),
    Column("final_test_accuracy", "fraction", "test accuracy at the last evaluation", domain=FRACTION),
    Column("final_lambda_max", "L/θ²", "λmax at the last analyzed checkpoint", domain=POSITIVE),
    Column(
        "final_lambda_max_over_ws", "1", "λmax / WS bound at the last analyzed checkpoint", domain=POSITIVE
    ),
    Column("final_ipr_normalized", "1", "normalized IPR at the last analyzed checkpoint", domain=POSITIVE),
    Column(
        "mean_displacement_plain",
        "1",
        "displacement_matched_plain averaged over the leading ranks and consecutive pairs",
        domain=DISPLACEMENT,
    ),
    Column(
        "mean_displacement_cluster",
        "1",
        "displacement_matched_cluster averaged over the leading ranks and consecutive pairs",
        domain=DISPLACEMENT,
    ),
    Column("stability_ratio", "1", "λmax / its stability threshold (1 = the edge)", domain=POSITIVE),
    Column("random_alignment", "fraction", "k/P: the alignment of a random direction", domain=FRACTION),
    Column("ipr_normalized_null", "1", "normalized IPR of a null model", domain=POSITIVE),
    Column(
        "spectral_range", "L/θ²", "λmax − λmin of the Hessian (needs the bottom group)", domain=NON_NEGATIVE
    ),
    Column(
        "final_spectral_range", "L/θ²", "λmax − λmin at the last analyzed checkpoint", domain=NON_NEGATIVE
    ),
    Column("final_ws_bound_exact", "L/θ²", "exact WS bound at the last analyzed checkpoint", domain=POSITIVE),
    Column("loss_gap", "L", "test loss − train loss (whole splits, eval rows)"),
    Column("accuracy_gap", "fraction", "train accuracy − test accuracy (whole splits, eval rows)"),
    Column("final_loss_gap", "L", "test loss − train loss at the last evaluation"),
    Column("crossings", "count", "crossings between consecutive checkpoints", domain=NON_NEGATIVE),
    Column("clusters", "count", "cluster groups between consecutive checkpoints", domain=NON_NEGATIVE),
)
register_metrics(*REPORT_METRICS)
