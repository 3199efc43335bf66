"""The loss registry: one table of every loss softxent ships, and the way to add one.

Proofs, verification, experiments, benchmarks and the CLI enumerate losses from
here. The table below is written out by hand, one entry per loss; a loss's name
comes from its function and its references from its docstring's References
section, so each is stated once. A user's loss joins the table through
:func:`register_loss`, which checks it exactly as it checks the built-ins.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import jax

from .losses import (
    binary_cross_entropy,
    brier_score,
    cross_entropy,
    distillation_loss,
    focal_cross_entropy,
    generalized_cross_entropy,
    js_divergence,
    kl_divergence,
    poly1_cross_entropy,
    reverse_kl_divergence,
    sigmoid_binary_cross_entropy,
    sigmoid_focal_loss,
    softmax_cross_entropy,
)
from .losses._chunked import (
    chunked_distillation_loss,
    chunked_generalized_js_divergence,
    chunked_reverse_kl_distillation_loss,
    chunked_softmax_cross_entropy,
    chunked_softmax_cross_entropy_with_integer_labels,
    chunked_sparse_distillation_loss,
    linear_distillation_loss,
    linear_generalized_js_divergence,
    linear_reverse_kl_distillation_loss,
    linear_softmax_cross_entropy,
    linear_softmax_cross_entropy_with_integer_labels,
    linear_sparse_distillation_loss,
)
from .losses._export import Param, export_loss, is_exported
from .losses._integer import softmax_cross_entropy_with_integer_labels
from .losses._sparse import sparse_distillation_loss

InputKind = Literal["logits", "probabilities", "hidden"]
TargetKind = Literal["probabilities", "logits", "hidden", "labels", "top_k"]
Link = Literal["softmax", "sigmoid", "none"]
Output = Literal["per_example", "per_component"]
Family = Literal["dense", "sparse", "chunked", "linear"]


def references_of(doc: str | None) -> tuple[str, ...]:
    """The entries of a Google-style docstring's ``References:`` section.

    Entries are separated by blank lines; an entry's lines are joined.
    """
    if not doc:
        return ()
    lines = inspect.cleandoc(doc).splitlines()
    try:
        start = lines.index("References:") + 1
    except ValueError:
        return ()
    entries: list[list[str]] = [[]]
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break  # the next section
        if line.strip():
            entries[-1].append(line.strip())
        elif entries[-1]:
            entries.append([])
    return tuple(" ".join(e) for e in entries if e)


def _check_choice(name: str, field: str, value: Any, kind: Any) -> None:
    choices = get_args(kind)
    if value not in choices:
        raise ValueError(f"loss {name!r}: {field} must be one of {choices}, got {value!r}")


def _check_signature(name: str, fn: Callable[..., Any], family: str, params: tuple) -> None:
    """The API contract every registered loss follows."""
    signature = inspect.signature(fn).parameters
    keyword = inspect.Parameter.KEYWORD_ONLY
    required = {"reduction": "none"}
    if family == "dense":
        required["where"] = None
        if "axis" not in signature or signature["axis"].kind is not keyword:
            raise ValueError(f"loss {name!r}: its function must take a keyword-only 'axis'")
    for option, default in required.items():
        got = signature.get(option)
        if got is None or got.kind is not keyword or got.default != default:
            shown = "missing" if got is None else f"{got.kind.description}, default {got.default!r}"
            raise ValueError(
                f"loss {name!r}: its function must take a keyword-only {option!r} with "
                f"default {default!r}, got {shown}"
            )
    for p in params:
        got = signature.get(p.name)
        if got is None or got.kind is not keyword or got.default != p.default:
            shown = "missing" if got is None else f"{got.kind.description}, default {got.default!r}"
            raise ValueError(
                f"loss {name!r}: parameter {p.name!r} must be keyword-only with default "
                f"{p.default!r} (its Param's default), got {shown}"
            )


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """What the rest of softxent needs to know about one loss.

    Attributes:
      fn: the exported loss (made by :func:`export_loss`).
      input: whether the first argument is ``"logits"``, ``"probabilities"``
        or (the linear family) ``"hidden"`` states with an output matrix.
      link: how logits become probabilities: ``"softmax"`` over the class axis,
        ``"sigmoid"`` per component, or ``"none"`` for probability inputs.
      output: ``"per_example"`` sums over the class axis (one value per
        example); ``"per_component"`` returns one value per component. (The
        ``reduction=`` argument of every loss then keeps, averages or sums it.)
      summary: a one-line description.
      targets: whether the second argument is target ``"probabilities"``,
        (for distillation) teacher ``"logits"``, teacher ``"hidden"`` states,
        integer class ``"labels"``, or a teacher's ``"top_k"`` classes (then
        their log-probabilities come third).
      family: ``"dense"`` for the losses on whole arrays of logits or
        probabilities with targets of the same shape (every tool takes
        these); ``"sparse"`` for whole logits with targets given as class
        indices (integer labels, top-k teachers); ``"chunked"`` and
        ``"linear"`` for the large-vocabulary forms, over row chunks or from
        hidden states and an output matrix.
      symbolic: an optional symbolic twin of the loss, kept for
        :mod:`softxent.symbolic`; the registry does not look inside it.
      name: the function's name, e.g. ``"softmax_cross_entropy"``.
      params: the hyperparameters ``fn`` was exported with, with defaults and
        domains.
      references: the entries of the docstring's References section.
    """

    fn: Callable[..., jax.Array]
    input: InputKind
    link: Link
    output: Output
    summary: str
    targets: TargetKind = "probabilities"
    family: Family = "dense"
    symbolic: Any = None
    name: str = dataclasses.field(init=False)
    params: tuple[Param, ...] = dataclasses.field(init=False)
    references: tuple[str, ...] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        name = getattr(self.fn, "__name__", repr(self.fn))
        if not is_exported(self.fn):
            raise TypeError(
                f"loss {name!r}: fn must be exported with softxent.export_loss "
                "(softxent.register_loss exports a plain function itself)"
            )
        _check_choice(name, "input", self.input, InputKind)
        _check_choice(name, "targets", self.targets, TargetKind)
        _check_choice(name, "link", self.link, Link)
        _check_choice(name, "output", self.output, Output)
        _check_choice(name, "family", self.family, Family)
        if not isinstance(self.summary, str) or not self.summary.strip():
            raise ValueError(f"loss {name!r}: summary must be a non-empty string, "
                             f"got {self.summary!r}")
        _check_signature(name, self.fn, self.family, self.fn.params)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "params", self.fn.params)
        object.__setattr__(self, "references", references_of(self.fn.__doc__))

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise KeyError(f"{self.name} has no parameter {name!r} (parameters: {known})")


_BUILT_IN = (
    LossSpec(
        binary_cross_entropy,
        input="probabilities",
        link="none",
        output="per_component",
        summary="the note's H(p, q) = -[q log p + (1-q) log(1-p)], per component",
    ),
    LossSpec(
        cross_entropy,
        input="probabilities",
        link="none",
        output="per_example",
        summary="categorical cross-entropy -sum q log p of probability vectors",
    ),
    LossSpec(
        sigmoid_binary_cross_entropy,
        input="logits",
        link="sigmoid",
        output="per_component",
        summary="binary cross-entropy on sigmoid(x), per component, for soft multi-label targets",
    ),
    LossSpec(
        sigmoid_focal_loss,
        input="logits",
        link="sigmoid",
        output="per_component",
        summary="sigmoid focal loss for soft multi-label targets, per component",
    ),
    LossSpec(
        softmax_cross_entropy,
        input="logits",
        link="softmax",
        output="per_example",
        summary="cross-entropy H(q, softmax(z)) with soft targets and optional label smoothing",
    ),
    LossSpec(
        kl_divergence,
        input="logits",
        link="softmax",
        output="per_example",
        summary="KL(q || softmax(z)), cross-entropy minus the target's entropy",
    ),
    LossSpec(
        reverse_kl_divergence,
        input="logits",
        link="softmax",
        output="per_example",
        summary="KL(softmax(z) || q), mode-seeking; infinite where q_i = 0 < p_i",
    ),
    LossSpec(
        js_divergence,
        input="logits",
        link="softmax",
        output="per_example",
        summary="Jensen-Shannon divergence between q and softmax(z), bounded by log 2",
    ),
    LossSpec(
        brier_score,
        input="logits",
        link="softmax",
        output="per_example",
        summary="Brier score: squared distance between softmax(z) and q",
    ),
    LossSpec(
        focal_cross_entropy,
        input="logits",
        link="softmax",
        output="per_example",
        summary="softmax focal loss with soft targets, -sum q (1-p)^gamma log p",
    ),
    LossSpec(
        poly1_cross_entropy,
        input="logits",
        link="softmax",
        output="per_example",
        summary="Poly-1 loss: cross-entropy + epsilon * sum q (1 - p)",
    ),
    LossSpec(
        generalized_cross_entropy,
        input="logits",
        link="softmax",
        output="per_example",
        summary="generalized cross-entropy sum q (1 - p^k) / k, robust to label noise",
    ),
    LossSpec(
        distillation_loss,
        input="logits",
        targets="logits",
        link="softmax",
        output="per_example",
        summary="Hinton's distillation loss T^2 KL(softmax(t/T) || softmax(s/T)); teacher frozen",
    ),
    LossSpec(
        softmax_cross_entropy_with_integer_labels,
        input="logits",
        targets="labels",
        link="softmax",
        output="per_example",
        family="sparse",
        summary="PyTorch's cross-entropy on class indices: smoothing, ignore_index, weights",
    ),
    LossSpec(
        sparse_distillation_loss,
        input="logits",
        targets="top_k",
        link="softmax",
        output="per_example",
        family="sparse",
        summary="distillation from a teacher's top-k log-probabilities (renormalised, or a "
                "tail bucket)",
    ),
    LossSpec(
        chunked_softmax_cross_entropy,
        input="logits",
        targets="probabilities",
        link="softmax",
        output="per_example",
        family="chunked",
        summary="softmax_cross_entropy by row chunks: temporaries set by the chunk",
    ),
    LossSpec(
        chunked_distillation_loss,
        input="logits",
        targets="logits",
        link="softmax",
        output="per_example",
        family="chunked",
        summary="distillation_loss by row chunks",
    ),
    LossSpec(
        chunked_softmax_cross_entropy_with_integer_labels,
        input="logits",
        targets="labels",
        link="softmax",
        output="per_example",
        family="chunked",
        summary="integer-label cross-entropy by row chunks",
    ),
    LossSpec(
        chunked_sparse_distillation_loss,
        input="logits",
        targets="top_k",
        link="softmax",
        output="per_example",
        family="chunked",
        summary="top-k teacher distillation by row chunks",
    ),
    LossSpec(
        chunked_generalized_js_divergence,
        input="logits",
        targets="logits",
        link="softmax",
        output="per_example",
        family="chunked",
        summary="generalized JSD by row chunks; beta 0: KL(P || Q), 1: KL(Q || P)",
    ),
    LossSpec(
        chunked_reverse_kl_distillation_loss,
        input="logits",
        targets="logits",
        link="softmax",
        output="per_example",
        family="chunked",
        summary="T^2 KL(student || teacher) distillation by row chunks",
    ),
    LossSpec(
        linear_softmax_cross_entropy,
        input="hidden",
        targets="probabilities",
        link="softmax",
        output="per_example",
        family="linear",
        summary="soft-target cross-entropy of hidden @ weight + bias, no N x V logits",
    ),
    LossSpec(
        linear_distillation_loss,
        input="hidden",
        targets="hidden",
        link="softmax",
        output="per_example",
        family="linear",
        summary="distillation between two models' hidden states, no N x V logits",
    ),
    LossSpec(
        linear_softmax_cross_entropy_with_integer_labels,
        input="hidden",
        targets="labels",
        link="softmax",
        output="per_example",
        family="linear",
        summary="integer-label cross-entropy of hidden @ weight + bias, no N x V logits",
    ),
    LossSpec(
        linear_sparse_distillation_loss,
        input="hidden",
        targets="top_k",
        link="softmax",
        output="per_example",
        family="linear",
        summary="top-k teacher distillation into hidden @ weight + bias, no N x V array",
    ),
    LossSpec(
        linear_generalized_js_divergence,
        input="hidden",
        targets="hidden",
        link="softmax",
        output="per_example",
        family="linear",
        summary="generalized JSD between two models' hidden states, no N x V logits",
    ),
    LossSpec(
        linear_reverse_kl_distillation_loss,
        input="hidden",
        targets="hidden",
        link="softmax",
        output="per_example",
        family="linear",
        summary="T^2 KL(student || teacher) from hidden states, no N x V logits",
    ),
)

_REGISTRY: dict[str, LossSpec] = {}
_BUILT_IN_NAMES = frozenset(spec.name for spec in _BUILT_IN)


def _add(spec: LossSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"loss {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


for _spec in _BUILT_IN:
    _add(_spec)


def register_loss(
    fn: Callable[..., jax.Array] | None = None,
    /,
    *,
    input: InputKind,
    link: Link,
    output: Output,
    summary: str,
    targets: TargetKind = "probabilities",
    params: Sequence[Param] = (),
    family: Family = "dense",
    symbolic: Any = None,
) -> Any:
    """Add a loss to the registry, so that :func:`get_loss` and :func:`list_losses` see it.

    ``fn`` is a pure loss function following softxent's contract: predictions
    and targets positional; keyword-only ``axis``, ``where=None``,
    ``reduction="none"`` and one keyword-only argument per ``Param`` in
    ``params``, with the Param's default. A plain function is exported with
    :func:`export_loss` (``params`` checked eagerly, one ``jit``); an exported
    one keeps its own ``params``. The entry is checked as the built-ins are,
    and a bad field raises a ``ValueError`` naming it. Use it as a call,
    ``register_loss(my_loss, input=..., ...)``, or as a decorator,
    ``@register_loss(input=..., ...)``; either returns the exported loss.

    Example:
      >>> import jax, jax.numpy as jnp, softxent
      >>> @softxent.register_loss(input="logits", link="softmax",
      ...                         output="per_example", summary="softmax total variation")
      ... def total_variation(logits, targets, *, axis=-1, where=None, reduction="none"):
      ...     p = jax.nn.softmax(logits, axis=axis, where=where)
      ...     tv = 0.5 * jnp.sum(jnp.abs(p - targets), axis=axis, where=where)
      ...     return softxent.apply_reduction("total_variation", tv, reduction)
      >>> float(softxent.get_loss("total_variation").fn(jnp.zeros(2), jnp.array([1.0, 0.0])))
      0.5
      >>> softxent.unregister_loss("total_variation")
    """

    def register(loss: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
        if is_exported(loss):
            if params:
                raise ValueError(
                    f"loss {loss.__name__!r}: params come from export_loss for an exported "
                    "function; pass them there, not to register_loss"
                )
        else:
            loss = export_loss(params)(loss)
        _add(LossSpec(loss, input=input, link=link, output=output, summary=summary,
                      targets=targets, family=family, symbolic=symbolic))
        return loss

    return register if fn is None else register(fn)


def unregister_loss(name: str) -> None:
    """Remove a loss added with :func:`register_loss`; the built-ins stay."""
    if name in _BUILT_IN_NAMES:
        raise ValueError(f"loss {name!r} is built in and cannot be unregistered")
    get_loss(name)  # a KeyError naming close names
    del _REGISTRY[name]


def list_losses(
    *,
    input: InputKind | None = None,
    link: Link | None = None,
    output: Output | None = None,
    family: Family | None = "dense",
) -> list[LossSpec]:
    """The registered losses in table order, then the users' in registration order.

    Filters keep the entries whose field equals the given value. ``family``
    is ``"dense"`` by default, the losses on whole arrays; pass ``"chunked"``
    or ``"linear"`` for the large-vocabulary forms, or ``None`` for every
    family.
    """
    return [
        s
        for s in _REGISTRY.values()
        if (input is None or s.input == input)
        and (link is None or s.link == link)
        and (output is None or s.output == output)
        and (family is None or s.family == family)
    ]


def get_loss(name: str, *, family: Family | None = None) -> LossSpec:
    """The registry entry for ``name``; a ``KeyError`` suggests close names.

    ``family=None`` finds a loss of any family. A tool that can only use one
    family (most take ``"dense"`` losses: logits or probabilities and targets of
    the same shape) passes it, and a loss of another family is a ``KeyError``
    saying which family it is in.
    """
    known = list(_REGISTRY) if family is None else loss_names(family=family)
    spec = _REGISTRY.get(name)
    if spec is not None and (family is None or spec.family == family):
        return spec
    if spec is not None:
        raise KeyError(
            f"loss {name!r} is of the {spec.family!r} family; expected a loss of the "
            f"{family!r} family (those: {', '.join(known)})"
        )
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise KeyError(f"unknown loss {name!r}{hint} (known: {', '.join(known)})") from None


def loss_names(*, family: Family | None = "dense") -> list[str]:
    """The names of the registered losses of ``family`` (every family for ``None``)."""
    return [s.name for s in list_losses(family=family)]


__all__ = [
    "LossSpec",
    "Param",
    "get_loss",
    "list_losses",
    "loss_names",
    "references_of",
    "register_loss",
    "unregister_loss",
]
