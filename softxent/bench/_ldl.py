"""K-fold cross-validation on an LDL dataset: softxent's models and the SciPy peer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._registry import LossSpec, get_loss
from ..ldl import MEASURES, LDLData, score


def fold_assignment(n: int, folds: int, seed: int) -> np.ndarray:
    """The fold of each row: a seeded permutation dealt round-robin."""
    if not 2 <= folds <= n:
        raise ValueError(f"folds must be between 2 and the number of rows ({n}), got {folds}")
    order = np.random.default_rng(seed).permutation(n)
    fold = np.empty(n, dtype=np.int64)
    fold[order] = np.arange(n) % folds
    return fold


def _standardisation(x: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold mean and scale of the features over that fold's training rows."""
    weights = train / train.sum(axis=1, keepdims=True)
    mean = weights @ x
    var = weights @ (x * x) - mean * mean
    scale = np.sqrt(np.maximum(var, 0))
    return mean, np.where(scale > 1e-12, scale, 1.0)


def softmax_loss(name: str) -> LossSpec:
    """A registry loss usable to fit a distribution: softmax link, probability targets."""
    spec = get_loss(name, family="dense")
    if spec.link != "softmax" or spec.targets != "probabilities" or spec.input != "logits":
        raise ValueError(f"--loss {name!r} cannot fit a label distribution: it needs a softmax "
                         f"loss on logits with probability targets (this one is "
                         f"{spec.input}/{spec.link}, targets {spec.targets})")
    return spec


def _summary(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {m: {"mean": float(np.mean([f[m] for f in per_fold])),
                "std": float(np.std([f[m] for f in per_fold]))} for m in MEASURES}


# Ridge penalties l2="auto" chooses from (per training example, on the weights of
# standardised features, so one scale of penalty suits every dataset). No 0: the
# unregularised fit is the default mode, and where it runs into the iteration cap
# it would cost as much as all the other candidates together (Movie: 21.8 s with
# 0 left out, 27.7 s with it; the same penalty chosen in every fold).
L2_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
INNER_FOLDS = 5  # one fifth of each training fold validates the choice


def _predict(logits_fn: Any, params: Any, x: Any, mean: Any, scale: Any) -> np.ndarray:
    """Every fold's predicted distributions for all rows, as float64 NumPy."""
    import jax

    predict = jax.jit(jax.vmap(lambda p, m, s: jax.nn.softmax(logits_fn(p, x, m, s))))
    return np.asarray(predict(params, mean, scale), dtype=np.float64)


def _choose_l2(fit: Any, arrays: tuple[Any, ...], fold: np.ndarray, fitted: Sequence[int],
               seed: int, labels: np.ndarray) -> np.ndarray:
    """The penalty from ``L2_GRID`` of each outer fold in ``fitted`` (``fit`` returns
    parameters and iteration counts): fit on four fifths of its training rows with
    every candidate at once and keep the one with the lowest mean KL on the
    remaining fifth. Test rows are never seen."""
    import jax.numpy as jnp

    from ..ldl._models import maxent_logits

    x, targets, _, mean, scale = arrays
    inner = np.empty_like(fold)
    validation, fit_rows = [], []
    for f in fitted:  # a seeded split of each training fold, independent of the outer one
        rows = np.flatnonzero(fold != f)
        inner[rows] = fold_assignment(rows.size, INNER_FOLDS, seed + 1 + f)
        validation.append((fold != f) & (inner == 0))
        fit_rows.append((fold != f) & (inner != 0))
    grid, count = len(L2_GRID), len(fitted)
    dtype = targets.dtype
    # Row i of every array is outer fold fitted[i // grid] with candidate i % grid.
    mean, scale = jnp.repeat(mean, grid, axis=0), jnp.repeat(scale, grid, axis=0)
    params, _ = fit(x, targets, jnp.asarray(np.repeat(np.stack(fit_rows), grid, axis=0), dtype),
                    mean, scale, jnp.asarray(np.tile(L2_GRID, count), dtype))
    predictions = _predict(maxent_logits, params, x, mean, scale)
    kl = np.array([score(labels[validation[i // grid]], predictions[i][validation[i // grid]])["kl"]
                   for i in range(count * grid)]).reshape(count, grid)
    kl = np.where(np.isfinite(kl), kl, np.inf)  # a diverged candidate is never chosen
    return np.asarray(L2_GRID)[np.argmin(kl, axis=1)]


def cross_validate(data: LDLData, *, model: str = "maxent", loss: str = "kl_divergence",
                   folds: int = 10, seed: int = 0, max_iter: int = 500, gtol: float = 1e-7,
                   standardize: bool | None = None, dtype: str = "float64",
                   l2: float | str = 0.0, sparse: bool | None = None,
                   inverse_map: bool = False) -> dict[str, Any]:
    """Train every fold in one jitted call and report the six measures.

    The same as :func:`combine_folds` of one :func:`fit_folds` of every fold;
    several processes each fit some folds and combine them (``softxent ldl``).

    ``standardize`` (default: off for maxent, on for the MLP) scales features
    with each training fold's statistics. Geng's maxent model is fitted on the
    features as given: on Movie's sparse bag-of-words features, standardising
    inflates rare words and the unregularised fit overfits them (KL 0.1268
    against 0.1192 as given, measured on the shared data).

    ``sparse`` (default: when it pays, see ``_models.SPARSE_BELOW``) hands maxent
    the features as a BCOO matrix; the fit is the same function of the data, only
    its summation order changes. The MLP standardises the matrix itself, so it
    always reads it dense.

    ``l2="auto"`` (maxent only) picks each fold's ridge penalty from ``L2_GRID``
    by validation inside that fold's training rows (see ``_choose_l2``); the test
    rows play no part in the choice, and ``seconds`` includes it. A penalty on
    the weights needs features on one scale, so ``l2="auto"`` standardises them
    unless ``standardize=False`` is given.

    ``inverse_map=True`` also scores the predictions mapped back through the
    loss's symbolic inverse map (``softxent.symbolic.analyze(loss).invert``):
    for an improper loss, the target whose minimiser the prediction is. The
    result then has ``metrics_inverse_map`` (same form as ``metrics``) and
    ``inverse_map`` (the map, as text); a loss without an inverse map is a
    ``ValueError`` before any fitting.

    The result matches ``softxent ldl --json``: dataset, n, d, k, folds, model,
    loss, seconds, metrics as {name: {mean, std}} over folds (std with ddof = 0,
    as NumPy and PyLDL compute it), dtype, standardize, l2 (the chosen value of
    each fold when ``l2="auto"``), sparse, and for maxent max_iter and
    folds_at_max_iter (how many folds stopped at the iteration cap rather than
    converging; None for the MLP, which runs a fixed number of steps).
    """
    part = fit_folds(data, model=model, loss=loss, folds=folds, seed=seed, max_iter=max_iter,
                     gtol=gtol, standardize=standardize, dtype=dtype, l2=l2, sparse=sparse,
                     inverse_map=inverse_map)
    return combine_folds([part])


def fit_folds(data: LDLData, *, model: str = "maxent", loss: str = "kl_divergence",
              folds: int = 10, seed: int = 0, max_iter: int = 500, gtol: float = 1e-7,
              standardize: bool | None = None, dtype: str = "float64",
              l2: float | str = 0.0, sparse: bool | None = None, inverse_map: bool = False,
              fitted: Sequence[int] | None = None) -> dict[str, Any]:
    """Fit the outer folds ``fitted`` (default: all ``folds``) as :func:`cross_validate`
    does, and score each: a part for :func:`combine_folds`, JSON-ready.

    Each fold's fit, penalty choice and scores depend on that fold alone, so parts
    fitted apart (in other processes) combine into the result of fitting all at once.
    """
    import jax
    import jax.numpy as jnp

    from ..ldl._models import MODELS, bcoo_features, fit_maxent, fit_mlp, sparse_pays

    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
    if isinstance(l2, str):
        if l2 != "auto":
            raise ValueError(f"l2 must be a number >= 0 or 'auto', got {l2!r}")
        if model != "maxent":
            raise ValueError(f"l2='auto' needs model 'maxent', got model {model!r}")
    elif not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if sparse and model != "maxent":
        raise ValueError(f"sparse features need model 'maxent' (the MLP standardises them "
                         f"densely), got model {model!r}")
    spec = softmax_loss(loss)
    analysis = _inverse_map_of(loss, data.k) if inverse_map else None
    start = time.perf_counter()
    fold = fold_assignment(data.n, folds, seed)
    fitted = list(range(folds)) if fitted is None else sorted(set(fitted))
    if not fitted or not all(0 <= f < folds for f in fitted):
        raise ValueError(f"fitted must name folds among 0..{folds - 1}, got {fitted}")
    train = (fold[None, :] != np.asarray(fitted)[:, None]).astype(np.float64)
    if standardize is None:
        standardize = model != "maxent" or l2 == "auto"
    if standardize:
        mean, scale = _standardisation(data.features, train)
    else:
        mean, scale = np.zeros((len(fitted), data.d)), np.ones((len(fitted), data.d))
    if sparse is None:
        sparse = model == "maxent" and sparse_pays(data.features)
    x = bcoo_features(data.features, dtype) if sparse else jnp.asarray(data.features, dtype)
    targets = jnp.asarray(data.labels, dtype)
    mean, scale = jnp.asarray(mean, dtype), jnp.asarray(scale, dtype)
    arrays = (x, targets, jnp.asarray(train, dtype), mean, scale)
    penalties: Any = l2
    if model == "maxent":
        fit = jax.jit(lambda x, t, tr, m, s, penalty: fit_maxent(
            spec, x, t, tr, m, s, max_iter=max_iter, gtol=gtol, l2=penalty,
            return_iterations=True))
        if l2 == "auto":
            penalties = _choose_l2(fit, arrays, fold, fitted, seed, data.labels)
        params, iterations = fit(*arrays, jnp.asarray(penalties, dtype))
        capped: list[bool | None] = [bool(i >= max_iter) for i in np.asarray(iterations)]
    else:
        # one key per fold, so that a fold's initialisation does not depend on its batch
        keys = jax.random.split(jax.random.key(seed), folds)[np.asarray(fitted)]
        fit = jax.jit(lambda *a: fit_mlp(spec, *a, key=keys))
        params = fit(*arrays)
        capped = [None] * len(fitted)  # a fixed number of steps: no cap to reach
    predictions = _predict(MODELS[model], params, x, mean, scale)
    records = []
    for j, f in enumerate(fitted):
        test = fold == f
        record: dict[str, Any] = {
            "fold": f, "metrics": score(data.labels[test], predictions[j][test]),
            "at_max_iter": capped[j],
            "l2": float(penalties[j]) if isinstance(penalties, np.ndarray) else penalties}
        if analysis is not None:
            record["metrics_inverse_map"] = score(data.labels[test],
                                                  analysis.invert(predictions[j][test]))
        records.append(record)
    return {
        "dataset": data.name, "n": data.n, "d": data.d, "k": data.k, "folds": folds,
        "model": model, "loss": loss, "seconds": time.perf_counter() - start,
        "dtype": dtype, "standardize": standardize, "l2": l2, "sparse": sparse,
        "max_iter": max_iter if model == "maxent" else None,
        "inverse_map": None if analysis is None else analysis.inverse_map,
        "fitted": records,
    }


def combine_folds(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The :func:`cross_validate` result of parts from :func:`fit_folds` that together
    fit every fold once; ``seconds`` is the longest part's (they ran side by side)."""
    first = parts[0]
    records = sorted((r for part in parts for r in part["fitted"]), key=lambda r: r["fold"])
    if [r["fold"] for r in records] != list(range(first["folds"])):
        raise ValueError(f"the parts must fit each of the {first['folds']} folds once, got folds "
                         f"{[r['fold'] for r in records]}")
    result = {key: first[key] for key in ("dataset", "n", "d", "k", "folds", "model", "loss")}
    result["seconds"] = max(part["seconds"] for part in parts)
    result["metrics"] = _summary([r["metrics"] for r in records])
    result.update({key: first[key] for key in ("dtype", "standardize", "sparse")})
    result["l2"] = [r["l2"] for r in records] if first["l2"] == "auto" else first["l2"]
    capped = [r["at_max_iter"] for r in records]
    result["folds_at_max_iter"] = None if None in capped else int(sum(capped))
    result["max_iter"] = first["max_iter"]
    if first["inverse_map"] is not None:
        result["inverse_map"] = first["inverse_map"]
        result["metrics_inverse_map"] = _summary([r["metrics_inverse_map"] for r in records])
    return result


def _inverse_map_of(loss: str, k: int) -> Any:
    """The symbolic analysis of ``loss`` for K classes, which must have an inverse map."""
    from ..symbolic import analyze

    analysis = analyze(loss, classes=k)
    if analysis.inverse_map is None:
        raise ValueError(f"--loss {loss!r} has no inverse map (softxent analyze {loss} found "
                         f"none), so --inverse-map cannot map its predictions back")
    return analysis


def cross_validate_peer(data: LDLData, *, folds: int = 10, seed: int = 0,
                        fitted: Sequence[int] | None = None) -> dict[str, Any]:
    """The same folds, fitted by the SciPy SA-BFGS peer exactly as PyLDL runs it.

    ``fitted`` (default: all) fits only those folds; ``per_fold`` holds each fitted
    fold's scores, and ``metrics`` summarises them.
    """
    from ._ldl_peer import fit_sa_bfgs, predict_sa_bfgs

    start = time.perf_counter()
    fold = fold_assignment(data.n, folds, seed)
    fitted = list(range(folds)) if fitted is None else sorted(set(fitted))
    per_fold = []
    for f in fitted:
        tr, te = fold != f, fold == f
        weights = fit_sa_bfgs(data.features[tr], data.labels[tr], seed=seed + f)
        predicted = predict_sa_bfgs(weights, data.features[te])
        per_fold.append({"fold": f, "metrics": score(data.labels[te], predicted)})
    return {
        "dataset": data.name, "n": data.n, "d": data.d, "k": data.k, "folds": folds,
        "model": "SA-BFGS (SciPy L-BFGS-B, PyLDL's setting)", "loss": "kl_divergence",
        "seconds": time.perf_counter() - start,
        "metrics": _summary([r["metrics"] for r in per_fold]), "per_fold": per_fold,
    }


def combine_peer_folds(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One :func:`cross_validate_peer` result of parts that fitted every fold once."""
    records = sorted((r for part in parts for r in part["per_fold"]), key=lambda r: r["fold"])
    result = dict(parts[0], per_fold=records, seconds=max(part["seconds"] for part in parts))
    result["metrics"] = _summary([r["metrics"] for r in records])
    return result
