"""Show the losses at work: where gradient descent drives p for a soft target,
and how each loss behaves at the inputs where optax gives NaN."""

from __future__ import annotations

import argparse
import math

HELP = "a short demonstration of the losses (part of `make run`)"
# The optional modules this command needs, with the extra that installs each.
NEEDS = (("optax", "experiments"),)

DISTRIBUTION = (0.3, 0.5, 0.2)
MULTILABEL = (0.9, 0.6, 0.2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=2000, help="adam steps (default 2000)")


def _fit(spec, target, steps: int):
    """Minimise ``spec`` over free logits with adam; return p = link(z)."""
    import jax
    import jax.numpy as jnp
    import optax

    q = jnp.asarray(target, dtype=jnp.float32)
    link = jax.nn.sigmoid if spec.link == "sigmoid" or spec.output == "per_component" else (
        jax.nn.softmax
    )
    if spec.targets == "logits":  # distillation: the teacher's logits encode q
        def objective(z):
            return jnp.sum(spec.fn(z, jnp.log(q)))
    elif spec.input == "probabilities":
        def objective(z):
            return jnp.sum(spec.fn(link(z), q))
    else:
        def objective(z):
            return jnp.sum(spec.fn(z, q))

    optimizer = optax.adam(0.05)

    @jax.jit
    def train(z):
        def step(carry, _):
            z, state = carry
            grads = jax.grad(objective)(z)
            updates, state = optimizer.update(grads, state)
            return (optax.apply_updates(z, updates), state), None

        (z, _), _ = jax.lax.scan(step, (z, optimizer.init(z)), length=steps)
        return z

    return link(train(jnp.zeros_like(q))), q


def _edge_cases():
    import jax
    import jax.numpy as jnp
    import optax

    import softxent

    ninf = -jnp.inf
    cases = [
        (
            "softmax CE, masked -inf logit, target 0",
            lambda z: softxent.softmax_cross_entropy(z, jnp.array([0.7, 0.3, 0.0])),
            lambda z: optax.softmax_cross_entropy(z, jnp.array([0.7, 0.3, 0.0])),
            jnp.array([1.0, 0.0, ninf]),
        ),
        (
            "sigmoid BCE, x = +inf, y = 1",
            lambda x: softxent.sigmoid_binary_cross_entropy(x, jnp.ones(1))[0],
            lambda x: optax.sigmoid_binary_cross_entropy(x, jnp.ones(1))[0],
            jnp.array([jnp.inf]),
        ),
        (
            "sigmoid BCE, x = -inf, y = 0",
            lambda x: softxent.sigmoid_binary_cross_entropy(x, jnp.zeros(1))[0],
            lambda x: optax.sigmoid_binary_cross_entropy(x, jnp.zeros(1))[0],
            jnp.array([ninf]),
        ),
        (
            "KL, d/dq at a target that is 0",
            lambda q: softxent.kl_divergence(jnp.zeros(2), q),
            lambda q: optax.kl_divergence(jax.nn.log_softmax(jnp.zeros(2)), q),
            jnp.array([1.0, 0.0]),
        ),
    ]
    rows = []
    for label, ours, theirs, x in cases:
        results = []
        for fn in (ours, theirs):
            value, grad = jax.value_and_grad(fn)(x)
            results.append((float(value), bool(jnp.all(jnp.isfinite(grad)))))
        rows.append((label, *results))
    return rows


def run(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise SystemExit(f"softxent demo: --steps must be >= 1, got {args.steps}")
    from .. import list_losses

    print(f"Where gradient descent (adam, lr 0.05, {args.steps} steps) drives p = link(z)")
    print(f"  softmax losses: target q = {list(DISTRIBUTION)}")
    print(f"  sigmoid / elementwise losses: per-component targets q = {list(MULTILABEL)}\n")
    print(f"  {'loss':<30} {'final p':<28} max|p - q|")
    missed = []
    for spec in list_losses():
        target = MULTILABEL if spec.output == "per_component" else DISTRIBUTION
        p, q = _fit(spec, target, args.steps)
        gap = float(abs(p - q).max())
        shown = "[" + ", ".join(f"{float(v):.4f}" for v in p) + "]"
        print(f"  {spec.name:<30} {shown:<28} {gap:.2e}")
        if gap > 1e-3:
            missed.append(spec.name)
    print(f"\n  Not driven to q (max|p - q| > 1e-3): {', '.join(missed) or 'none'}.")
    print("  Their minimisers for a soft target are derived in `softxent catalogue`.\n")
    print("Edge cases (float32): value and whether the gradient is finite")
    print(f"  {'case':<42} {'softxent':<22} optax")
    for label, (v1, ok1), (v2, ok2) in _edge_cases():
        ours = f"{v1:.4g}, grad {'finite' if ok1 else 'NaN/inf'}"
        theirs = f"{v2:.4g}, grad {'finite' if ok2 else 'NaN/inf'}"
        print(f"  {label:<42} {ours:<22} {theirs}")
        if math.isnan(v1) or not ok1:
            print("softxent demo: a softxent loss failed an edge case", flush=True)
            return 1
    return 0
