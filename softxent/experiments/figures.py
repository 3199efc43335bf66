"""Figures of experiment results (matplotlib with the Agg backend, imported here only).

* ``convergence``: median max_k |p - p*| per loss against the step (log scale);
* ``simplex``: trajectories of p on the 3-class simplex, with q and p*;
* ``gradients``: |dH/dp| (probability space) against |dH/dz| (logit space) for
  the binary cross-entropy near p = 0 and p = 1;
* ``surface``: the note's 3-D surface H(p, q), as a PNG and a rotating GIF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (the ``experiments`` extra)."""
    from .._optional import require

    matplotlib = require("matplotlib", "experiments", "the experiment figures")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(result, folder: str | Path) -> list[str]:
    """Every figure the config asks for; returns the file names written."""
    folder = Path(folder)
    written: list[str] = []
    for name in result.config.figures:
        written += _DRAW[name](result, folder)
    return written


def convergence(result, folder: Path) -> list[str]:
    plt = pyplot()
    steps = result.arrays["steps"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    kl = result.arrays.get("kl", False)
    for label, data in result.arrays["losses"].items():
        if data["err_median"] is None:
            continue
        line, = ax.semilogy(steps, np.maximum(data["err_median"], 1e-17),
                            label=f"{label} (train)" if kl else label)
        if kl:
            ax.semilogy(steps, np.maximum(data["err_max"], 1e-17), ls="--",
                        color=line.get_color(), label=f"{label} (test)")
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no symbolic minimiser available", ha="center", transform=ax.transAxes)
    ax.axhline(result.config.tolerance, color="grey", ls=":", lw=1, label="tolerance")
    opt = result.config.optimizer
    what = ("mean KL(q || p), train solid, test dashed" if kl
            else "median over runs of max_k |p - p*|")
    goal = "the generator" if kl else "the symbolic minimiser"
    ax.set(xlabel="step", ylabel=what,
           title=f"{result.config.name}: convergence to {goal} "
                 f"({opt.name}, lr {opt.learning_rate:g})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "convergence.png", dpi=120)
    plt.close(fig)
    return ["convergence.png"]


def _barycentric(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    xy = p @ corners
    return xy[..., 0], xy[..., 1]


def simplex(result, folder: Path) -> list[str]:
    plt = pyplot()
    items = list(result.arrays["losses"].items())
    cols = min(3, len(items))
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.7 * rows), squeeze=False)
    tri = _barycentric(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float))
    for ax, (label, data) in zip(axes.flat, items, strict=False):
        ax.plot(*tri, color="black", lw=0.8)
        for i in range(data["p"].shape[0]):
            x, y = _barycentric(data["p"][i])
            line, = ax.plot(x, y, lw=0.9, alpha=0.8)
            ax.plot(x[0], y[0], "o", ms=3, color=line.get_color())
            qx, qy = _barycentric(data["q"][i])
            ax.plot(qx, qy, "x", color="black", ms=6)
            if data["p_star"] is not None:
                sx, sy = _barycentric(data["p_star"][i])
                ax.plot(sx, sy, "*", color="red", ms=8, mfc="none")
        ax.set_title(label, fontsize=8)
        ax.set_aspect("equal")
        ax.axis("off")
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
    fig.suptitle("p on the simplex: o start, x target q, red * symbolic minimiser p*", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "simplex.png", dpi=120)
    plt.close(fig)
    return ["simplex.png"]


def gradients(result, folder: Path) -> list[str]:
    """|dH/dp| blows up like 1/p near the edges; |dH/dz| = |p - q| stays bounded."""
    import jax
    import jax.numpy as jnp

    from .. import get_loss

    plt = pyplot()
    bce = get_loss("binary_cross_entropy").fn
    sbce = get_loss("sigmoid_binary_cross_entropy").fn
    eps = np.logspace(-8, np.log10(0.5), 200)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for q in (0.1, 0.3, 0.7, 0.9):
        qa = jnp.asarray(q, dtype=jnp.float64)
        dp = jax.vmap(jax.grad(lambda p, qa=qa: bce(p, qa)))
        dz = jax.vmap(jax.grad(lambda z, qa=qa: sbce(z, qa)))
        for ax, p in ((axes[0], eps), (axes[1], 1 - eps)):
            pa = jnp.asarray(p, dtype=jnp.float64)
            z = jnp.log(pa) - jnp.log1p(-pa)
            line, = ax.loglog(eps, np.abs(np.asarray(dp(pa))), label=f"|dH/dp|, q={q}")
            ax.loglog(eps, np.abs(np.asarray(dz(z))), ls="--", color=line.get_color(),
                      label=f"|dH/dz|, q={q}")
    axes[0].set(xlabel="p (near 0)", ylabel="gradient magnitude",
                title="near p = 0")
    axes[1].set(xlabel="1 - p (near 1)", title="near p = 1")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("binary cross-entropy: gradient in p-space (solid) vs logit z-space (dashed)")
    fig.tight_layout()
    fig.savefig(folder / "gradients.png", dpi=120)
    plt.close(fig)
    return ["gradients.png"]


def surface(result, folder: Path, frames: int = 36) -> list[str]:
    """H(p, q) = -[q log p + (1 - q) log(1 - p)] over the unit square, and its valley p = q."""
    import jax.numpy as jnp
    from matplotlib.animation import FuncAnimation, PillowWriter

    from .. import get_loss

    plt = pyplot()
    grid = np.linspace(0.01, 0.99, 60)
    P, Q = np.meshgrid(grid, grid)
    H = np.asarray(get_loss("binary_cross_entropy").fn(jnp.asarray(P), jnp.asarray(Q)))
    fig = plt.figure(figsize=(6.5, 5))
    ax = fig.add_subplot(projection="3d")
    ax.plot_surface(P, Q, H, cmap="viridis", linewidth=0, antialiased=True, alpha=0.9)
    diag = np.asarray(get_loss("binary_cross_entropy").fn(jnp.asarray(grid), jnp.asarray(grid)))
    ax.plot(grid, grid, diag, color="red", lw=2, label="minimum p = q (entropy H(q))")
    ax.set(xlabel="p", ylabel="q", zlabel="H(p, q)", title="binary cross-entropy H(p, q)")
    ax.legend(loc="upper left", fontsize=8)
    ax.view_init(elev=25, azim=-60)
    fig.savefig(folder / "surface.png", dpi=120)

    def turn(i: int) -> Any:
        ax.view_init(elev=25, azim=-60 + 360 * i / frames)
        return ()

    FuncAnimation(fig, turn, frames=frames).save(folder / "surface.gif",
                                                 writer=PillowWriter(fps=12), dpi=70)
    plt.close(fig)
    return ["surface.png", "surface.gif"]


_DRAW = {"convergence": convergence, "simplex": simplex, "gradients": gradients,
         "surface": surface}
