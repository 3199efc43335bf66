"""Row losses between a student's and a teacher's logits for the large-vocabulary forms.

The generalized Jensen-Shannon divergence of Agarwal et al. (GKD) and Liger
Kernel's ``LigerFusedLinearJSD``, and reverse-KL distillation, each on one
chunk of ``[rows, V]`` logits; the chunked and linear forms in ``_chunked``
map them over row chunks. Their gradients are autodiff's, recomputed per chunk
under ``jax.checkpoint`` (or made in the forward pass of a reduced linear form),
so their temporaries are a chunk's.

With ``P = softmax(t / T)`` (teacher) and ``Q = softmax(s / T)`` (student) and
``M = beta P + (1 - beta) Q``:

    JSD_beta = beta KL(P || M) + (1 - beta) KL(Q || M),

with ``log M = logaddexp(log beta + log P, log(1 - beta) + log Q)``, never
``log`` of a sum that could underflow. The formula is 0 at ``beta = 0`` and
``beta = 1`` (``M`` is then ``Q`` or ``P``); as in Liger Kernel those two
values stand for the KLs it approaches after dividing by ``beta`` or
``1 - beta``: forward ``KL(P || Q)`` at 0 and reverse ``KL(Q || P)`` at 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .._numerics import expm1, log1p, masked_log_softmax, shifted_logits, softplus
from ._export import Param

BETA = Param("beta", 0.5, 0.0, 1.0, doc="the teacher's weight in the mixture M")


def generalized_js_rows(
    student_logits: jax.Array, teacher_logits: jax.Array, beta: jax.Array
) -> jax.Array:
    """``JSD_beta(P || Q)`` per row (``KL(P || Q)`` at ``beta = 0``, ``KL(Q || P)`` at 1),
    for temperature-scaled logits ``[..., V]``; neither the teacher nor ``beta`` is
    differentiated."""
    return _generalized_js(student_logits, jax.lax.stop_gradient(teacher_logits),
                           jax.lax.stop_gradient(beta))


def _mixture_log_ratios(d: jax.Array, beta: jax.Array):
    """``log(Q / M)`` and ``log(P / M)`` for ``M = beta P + (1 - beta) Q``, 0 < beta < 1,
    as functions of ``d = log P - log Q`` (``_log_ratio``, 0 where both are 0):

        log(Q / M) = -log1p(beta expm1(d)),   log(P / M) = -log1p((1 - beta) expm1(-d)).

    ``logaddexp(log beta + log P, log(1 - beta) + log Q)`` would round log M to the
    precision of log beta, losing a ratio near 1 (where the divergence is small).
    """
    limit = 0.5 * jnp.log(jnp.finfo(d.dtype).max)

    def ratio(x, weight):
        """-log((1 - weight) + weight e^x), the log-ratio to the mixture of the side
        whose log-ratio to the other is -x. Past the limit, e^x dwarfs 1 - weight (by
        e^limit, far beyond the dtype's precision), so each unit of x beyond it adds
        exactly -1."""
        beyond = x > limit
        excess = jnp.where(beyond, x, limit) - limit
        return -log1p(weight * expm1(jnp.where(beyond, limit, x))) - excess

    return ratio(d, beta), ratio(-d, 1 - beta)


def _log_ratio(student_logits: jax.Array, teacher_logits: jax.Array, log_q: jax.Array,
               log_p: jax.Array) -> jax.Array:
    """``log P - log Q`` per class, with the difference of the two normalisers formed as
    one quantity; 0 where both probabilities are 0.

    With ``s'`` and ``t'`` the logits less their rows' peaks (both ``<= 0``, so their
    difference cannot overflow) and ``S_s``, ``S_t`` the sums of their exponentials,

        log P - log Q = (t' - s') - c,
        c = log(S_t / S_s) = log1p(sum_j (Q_j e^(t'_j - s'_j) - Q_j)),

    each term ``Q_j expm1(t'_j - s'_j)`` where that difference is below 1 (elsewhere,
    infinite differences included, ``e^(t'_j - log S_s) - Q_j``, which cannot cancel).
    The difference of the two log-softmaxes would carry the rounding of ``log S_t`` and
    ``log S_s``, of the size of the rows' entropies, which a KL or a mixture's
    divergence between nearby rows (as small as the squares of the ``t' - s'``) then
    cancels to. Where ``t' - s'`` is not finite (a class without mass on either side,
    or a difference of logits that overflowed) the log-softmaxes' difference is kept,
    limits and all.
    """
    def shifted(logits):
        return shifted_logits(logits, None, jnp.max(logits, axis=-1, keepdims=True))

    teacher_shifted = shifted(teacher_logits)
    raw = teacher_shifted - shifted(student_logits)
    finite = jnp.isfinite(raw)
    q = jnp.exp(log_q)
    log_total = -jnp.max(log_q, axis=-1, keepdims=True)  # log S_s: the peak's s' is 0
    near = finite & (jnp.abs(raw) < 1)
    far = jnp.exp(jnp.where(near, 0, teacher_shifted - log_total)) - q
    terms = jnp.where(near, q * expm1(jnp.where(near, raw, 0)), far)
    c = log1p(jnp.sum(terms, axis=-1, keepdims=True))
    live = (log_q > -jnp.inf) | (log_p > -jnp.inf)
    plain = jnp.where(live, _difference(log_p, jnp.where(live, log_q, 0)), 0)
    return jnp.where(finite & jnp.isfinite(c), raw - c, plain)


@jax.custom_jvp
def _generalized_js(student_logits: jax.Array, teacher_logits: jax.Array,
                    beta: jax.Array) -> jax.Array:
    return _generalized_js_parts(student_logits, teacher_logits, beta)[0]


def _generalized_js_parts(student_logits, teacher_logits, beta):
    """The value, and the log-probabilities and log-ratios its gradient reuses."""
    log_q, log_p = _log_probabilities(student_logits, teacher_logits)
    log_p = _below_largest(log_p, teacher_logits)
    inside = (beta > 0) & (beta < 1)
    safe_beta = jnp.where(inside, beta, 0.5)
    d = _log_ratio(student_logits, teacher_logits, log_q, log_p)
    log_q_ratio, log_p_ratio = _mixture_log_ratios(d, safe_beta)
    mixed = (safe_beta * jnp.sum(_log_space_product(log_p, log_p_ratio), axis=-1)
             + (1 - safe_beta) * jnp.sum(_log_space_product(log_q, log_q_ratio), axis=-1))
    # The ends' KLs: infinite where one side has mass the other lacks (read only
    # where the weight is a nonzero float, as in _log_space_product).
    forward = jnp.sum(_log_space_product(log_p, d), axis=-1)
    reverse = jnp.sum(_log_space_product(log_q, -d), axis=-1)
    value = jnp.where(beta == 0, forward, jnp.where(beta == 1, reverse, mixed))
    return value, log_q, log_p, log_q_ratio, d, safe_beta, inside


@_generalized_js.defjvp
def _generalized_js_jvp(primals, tangents):
    value = _generalized_js_parts(*primals)[0]
    return value, jnp.sum(_generalized_js_gradient(*primals) * tangents[0], axis=-1)


@jax.custom_jvp
def _generalized_js_gradient(student_logits: jax.Array, teacher_logits: jax.Array,
                             beta: jax.Array) -> jax.Array:
    return _generalized_js_gradient_parts(student_logits, teacher_logits, beta)[0]


def _generalized_js_gradient_parts(student_logits, teacher_logits, beta):
    """The gradient in the student's logits, ``q_i (g_i - sum_j q_j g_j)``, and the parts
    of it the Hessian reuses.

    With ``g_i = (1 - beta) log(q_i / m_i)`` (the derivative of JSD_beta in log q_i:
    the terms from M's dependence on Q cancel), measured from the student's top class
    c: ``log(q_c / m_c) - log(q_i / m_i) = log1p(sigma_c expm1(delta_i))``, with
    ``sigma_c = beta p_c / m_c`` and ``delta_i = (t_i - t_c) - (s_i - s_c)`` formed from
    the logits, so ratios near 1 (a small divergence) keep their digits and the
    dominant term of ``sum q g`` is exactly 0. At beta = 0 the gradient is ``q - p``,
    at beta = 1 reverse KL's.
    """
    _, log_q, log_p, log_q_ratio, d, safe_beta, inside = _generalized_js_parts(
        student_logits, teacher_logits, beta)

    top = jnp.argmax(student_logits, axis=-1, keepdims=True)
    top_student = jnp.take_along_axis(student_logits, top, axis=-1)
    top_teacher = jnp.take_along_axis(teacher_logits, top, axis=-1)
    top_d = jnp.take_along_axis(d, top, axis=-1)
    # log sigma_c, sigma_c = sigmoid(a_c), a_c = d_c + log beta - log(1 - beta).
    a = top_d + jnp.log(safe_beta) - jnp.log1p(-safe_beta)
    log_sigma = -softplus(-a)
    direct = (jnp.isfinite(top_student) & jnp.isfinite(top_teacher)
              & ~jnp.isposinf(jnp.max(teacher_logits, axis=-1, keepdims=True))
              & (log_sigma > -jnp.inf))
    delta = _difference(
        _difference(teacher_logits, jnp.where(direct, top_teacher, 0)),
        _difference(student_logits, jnp.where(direct, top_student, 0)))
    delta = jnp.where(direct & ~jnp.isnan(delta), delta, 0)
    limit = 0.5 * jnp.log(jnp.finfo(d.dtype).max)
    small = delta < limit
    near = log1p(jnp.exp(log_sigma) * expm1(jnp.where(small, delta, 0)))
    # Where delta is huge, a_i = a_c + delta is not formed as that sum (a_c may be as
    # large and of the other sign): softplus(a_i) - softplus(a_c) from the log-ratios
    # has no cancellation, softplus(a_i) being the far larger.
    a_all = d + jnp.log(safe_beta) - jnp.log1p(-safe_beta)
    far = softplus(jnp.where(small, 0, a_all)) - softplus(a)
    from_top = jnp.where(small, near, far)
    # Rows not measured from the logits: the plain difference of the log-ratios.
    top_ratio = jnp.take_along_axis(log_q_ratio, top, axis=-1)
    live = log_q > -jnp.inf
    from_top = jnp.where(direct, from_top,
                         _difference(top_ratio, jnp.where(live, log_q_ratio, 0)))
    from_top = jnp.where(live, from_top, 0)
    mean = jnp.sum(_log_space_product(log_q, from_top), axis=-1, keepdims=True)
    mixed = (1 - safe_beta) * _log_space_product(log_q, _difference(mean, from_top))

    # q - p sums to 0: the student's top class takes minus the others' sum, which
    # keeps its digits where q_c and p_c both round to 1.
    forward = jnp.exp(log_q) - jnp.exp(log_p)
    is_top = jnp.arange(forward.shape[-1]) == top
    forward = jnp.where(is_top, -jnp.sum(jnp.where(is_top, 0, forward), axis=-1, keepdims=True),
                        forward)
    reverse = _reverse_kl_gradient(student_logits, teacher_logits, log_q, log_p)
    end = jnp.where(beta == 0, forward, reverse)
    gradient = jnp.where(inside, mixed, end)
    return gradient, log_q, reverse, jnp.exp(log_sigma) + mean, a, a_all, safe_beta, inside


@_generalized_js_gradient.defjvp
def _generalized_js_hessian(primals, tangents):
    """Hessian-vector products in the student's logits (the teacher and beta are
    constants: ``generalized_js_rows`` stops their gradients).

    With ``v`` the tangent, ``v'_i = v_i - sum_j q_j v_j`` (the tangent of ``log q_i``),
    and ``r_i = log(q_i / m_i)``, whose tangent is ``v'_i sigma_i`` (``sigma_i = beta
    p_i / m_i``), differentiating ``(1 - beta) q_i (r_i - sum_j q_j r_j)`` gives

        H v_i = (1 - beta) q_i [v'_i (w_i - rbar) - sum_k q_k v'_k w_k],
        w_i = r_i + sigma_i,   rbar = sum_j q_j r_j.

    Autodiff of the gradient forms this as ``(r_i - rbar) + sigma_i``, two terms that
    nearly cancel where ``p_i << q_i`` (``r_i - rbar`` is then ``-sigma_i`` to first
    order), and rounds the Hessian to noise far above its size. Here, with ``a_i`` the
    logit of ``sigma_i`` and ``r_i = -log(1 - beta) - softplus(a_i)``,

        w_i = -log(1 - beta) - f(a_i),   f(a) = softplus(a) - sigmoid(a),

    and measured from the student's top class ``c`` (``F_k = f(a_k) - f(a_c)``, and
    ``r_c - rbar`` the gradient's own ``mean``),

        H v_i = (1 - beta) q_i [v'_i (sigma_c + (r_c - rbar) - F_i) + sum_k q_k v'_k F_k],

    where ``f`` (``_softplus_less_sigmoid``) is formed without cancellation. At
    ``beta = 0`` (forward KL, gradient ``q - p``) ``H v = q v'``; at ``beta = 1`` it is
    reverse KL's (``_reverse_kl_hessian_product``).
    """
    student_logits, teacher_logits, beta = primals
    v = tangents[0]
    gradient, log_q, reverse, top_shift, a, a_all, safe_beta, inside = (
        _generalized_js_gradient_parts(student_logits, teacher_logits, beta))
    centred = _centred_tangent(log_q, v)
    live = log_q > -jnp.inf
    far_apart = _softplus_less_sigmoid(a_all) - _softplus_less_sigmoid(a)
    spread = jnp.sum(_log_space_product(log_q, centred * jnp.where(live, far_apart, 0)),
                     axis=-1, keepdims=True)
    inner = jnp.where(live, centred * (top_shift - far_apart), 0) + spread
    mixed = (1 - safe_beta) * _log_space_product(log_q, inner)
    forward = _log_space_product(log_q, centred)
    reverse = _reverse_kl_hessian_product(log_q, reverse, centred)
    end = jnp.where(beta == 0, forward, reverse)
    return gradient, jnp.where(inside, mixed, end)


def _centred_tangent(log_q: jax.Array, v: jax.Array) -> jax.Array:
    """``v - sum_j q_j v_j``: the tangent of ``log q`` for a tangent ``v`` of the logits,
    measured from the most probable class ``c`` as ``(v - v_c) - sum_j q_j (v_j - v_c)``:
    where ``q_c`` is near 1, ``sum_j q_j v_j`` rounds to ``v_c`` and ``v_c - sum_j q_j v_j``
    to noise, while the other form is the small sum it is."""
    top = jnp.argmax(log_q, axis=-1, keepdims=True)
    from_top = v - jnp.take_along_axis(v, top, axis=-1)
    return from_top - jnp.sum(_log_space_product(log_q, from_top), axis=-1, keepdims=True)


def _softplus_less_sigmoid(a: jax.Array) -> jax.Array:
    """``f(a) = softplus(a) - sigmoid(a) = -log(1 - t) - t`` for ``t = sigmoid(a)``.

    Both terms are ``t`` to first order: where ``t <= 1/4`` (``a <= -log 3``), the
    series ``f = sum_{n >= 2} t^n / n``, all of whose terms are positive, summed to
    the dtype's precision (``4^-(n-1)`` below its roundoff: 14 terms in float32, 28 in
    float64); above, ``f >= t^2 / 2 >= t / 8``, so the difference loses at most 3 bits.
    """
    terms = 14 if jnp.finfo(a.dtype).bits <= 32 else 28
    small = a <= -math.log(3)
    t = jnp.exp(-softplus(-jnp.where(small, a, -2)))
    series = jnp.zeros_like(t)
    for n in range(terms + 1, 1, -1):
        series = series * t + 1 / n
    direct = softplus(jnp.where(small, 0, a)) - jax.nn.sigmoid(jnp.where(small, 0, a))
    return jnp.where(small, series * t * t, direct)


def reverse_kl_rows(student_logits: jax.Array, teacher_logits: jax.Array) -> jax.Array:
    """``KL(Q || P)`` per row, ``Q`` the student's softmax and ``P`` the teacher's (not
    differentiated): infinite where the student puts mass on a class the teacher gives 0."""
    return _reverse_kl(student_logits, jax.lax.stop_gradient(teacher_logits))


@jax.custom_jvp
def _reverse_kl(student_logits: jax.Array, teacher_logits: jax.Array) -> jax.Array:
    return _reverse_kl_parts(student_logits, teacher_logits)[0]


def _reverse_kl_parts(student_logits, teacher_logits):
    """The value, and the log-probabilities its gradient reuses."""
    log_q, log_p = _log_probabilities(student_logits, teacher_logits)
    log_p = _below_largest(log_p, teacher_logits)
    d = _log_ratio(student_logits, teacher_logits, log_q, log_p)
    value = jnp.sum(_log_space_product(log_q, -d), axis=-1)
    return value, log_q, log_p


def _below_largest(logit_difference: jax.Array, teacher_logits: jax.Array) -> jax.Array:
    """A teacher's log-ratio, with a difference of finite logits that overflowed to
    -inf (logits more than the largest float apart) put back at minus the largest
    float: a class given -inf has no mass, but one given a finite logit has some, and
    the log-space product of a tiny student weight with -inf would be inf, not ~0."""
    largest = jnp.finfo(logit_difference.dtype).max
    spurious = jnp.isfinite(teacher_logits) & jnp.isneginf(logit_difference)
    return jnp.where(spurious, -largest, logit_difference)


@_reverse_kl.defjvp
def _reverse_kl_jvp(primals, tangents):
    value = _reverse_kl_parts(*primals)[0]
    return value, jnp.sum(_reverse_kl_student_gradient(*primals) * tangents[0], axis=-1)


@jax.custom_jvp
def _reverse_kl_student_gradient(student_logits: jax.Array,
                                 teacher_logits: jax.Array) -> jax.Array:
    _, log_q, log_p = _reverse_kl_parts(student_logits, teacher_logits)
    return _reverse_kl_gradient(student_logits, teacher_logits, log_q, log_p)


@_reverse_kl_student_gradient.defjvp
def _reverse_kl_student_hessian(primals, tangents):
    """Hessian-vector products in the student's logits (the teacher is a constant)."""
    _, log_q, log_p = _reverse_kl_parts(*primals)
    gradient = _reverse_kl_gradient(*primals, log_q, log_p)
    centred = _centred_tangent(log_q, tangents[0])
    return gradient, _reverse_kl_hessian_product(log_q, gradient, centred)


def _reverse_kl_hessian_product(log_q: jax.Array, gradient: jax.Array,
                                centred: jax.Array) -> jax.Array:
    """Reverse KL's ``H v`` from its gradient ``g_i = q_i (d_i - KL)`` (``d = log q -
    log p``) and the centred tangent ``v'`` (``_centred_tangent``):

        H v_i = q_i v'_i + [v'_i g_i - q_i sum_k g_k v'_k].

    The bracket is summed apart from ``q_i v'_i``: where the teacher's logits are far
    apart, ``g`` is huge and the bracket cancels to far less than ``q_i v'_i``, which
    ``v'_i (q_i + g_i)`` would round away.
    """
    live = log_q > -jnp.inf
    # The bracket is formed at 1/8 of its size and scaled back (exact in binary): its
    # terms may overflow where the bracket, which cancels, does not.
    eighth = gradient / 8
    moved = jnp.sum(jnp.where(live, eighth * centred, 0), axis=-1, keepdims=True)
    bracket = jnp.where(live, centred * eighth, 0) - _log_space_product(log_q, moved)
    return _log_space_product(log_q, centred) + 8 * bracket


def _reverse_kl_gradient(student_logits, teacher_logits, log_q, log_p):
    """The gradient ``q_i (g_i - sum_j q_j g_j)``, ``g = log q - log p``, with the
    teacher's log-probabilities measured from the class the student ranks first.

    ``log p`` enters the gradient only through its differences, so any per-row shift
    of it gives the same gradient; but a teacher with logits far apart (1e8 in float32)
    has log-probabilities whose rounding error exceeds the differences that matter, and
    ``g_i - sum q g`` would subtract two such numbers. Measured from the student's top
    class ``c`` as ``t_i - t_c`` (one rounding of the teacher's logits, not a
    difference of two rounded log-probabilities), the dominant term of ``sum q g`` is
    exactly 0, so nothing large cancels.

    The log-ratios are formed halved, and the gradient doubled at the end (both exact
    in binary floating point): a teacher's logits may span more than the largest
    float (``[-max, max]`` after the temperature), and ``t_i - t_c`` would overflow
    where its half does not, while ``q_i`` keeps the gradient itself in range.
    """
    top = jnp.argmax(student_logits, axis=-1, keepdims=True)
    top_logit = jnp.take_along_axis(teacher_logits, top, axis=-1)
    # Rows where t_i - t_c is not the log-ratio: a teacher holding +inf (its limit is
    # in log_p), or giving the student's top class no mass (the loss is then
    # infinite, and any finite shift of log_p serves).
    direct = (jnp.isfinite(top_logit)
              & ~jnp.isposinf(jnp.max(teacher_logits, axis=-1, keepdims=True)))
    half_log_p = jnp.where(
        direct, _difference(0.5 * teacher_logits, 0.5 * jnp.where(direct, top_logit, 0)),
        0.5 * log_p)
    live = log_q > -jnp.inf
    half_slope = jnp.where(live, _difference(0.5 * log_q, jnp.where(live, half_log_p, 0)), 0)
    mean = jnp.sum(_log_space_product(log_q, half_slope), axis=-1, keepdims=True)
    return 2 * _log_space_product(log_q, _difference(half_slope, mean))


def _difference(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a - b``, kept within the largest float where both are finite: the difference of
    two finite quantities is finite, and the weight it multiplies is then (nearly) 0,
    where an overflowed inf would make the product inf or NaN."""
    largest = jnp.finfo(a.dtype).max
    both = jnp.isfinite(a) & jnp.isfinite(b)
    return jnp.where(both, jnp.clip(a - b, -largest, largest), a - b)


def _log_space_product(log_weight: jax.Array, x: jax.Array) -> jax.Array:
    """``exp(log_weight) * x``, 0 where the weight is 0.

    A weight below the smallest normal number is flushed to 0 on the CPU, yet times a
    large finite ``x`` its product can be a normal number; those products are formed
    with the weight scaled up by ``1 / tiny`` and the product scaled back down. An
    infinite ``x`` (a teacher giving no mass) counts only where the weight itself is a
    nonzero float, so a class the student gives less than the smallest float does not
    make the loss infinite.
    """
    tiny = jnp.finfo(log_weight.dtype).tiny
    live = (log_weight > -jnp.inf) & (x != 0)
    below = live & jnp.isfinite(x) & (log_weight < jnp.log(tiny))
    # exp(log_weight - log tiny) < 1 here, so the scaled weight never overflows.
    scaled = jnp.exp(jnp.where(below, log_weight - jnp.log(tiny), log_weight))
    product = jnp.where(below, scaled * x * tiny, jnp.where(scaled > 0, scaled * x, 0))
    return jnp.where(live, product, 0)


def _log_probabilities(student_logits: jax.Array, teacher_logits: jax.Array
                       ) -> tuple[jax.Array, jax.Array]:
    """The student's and the (constant) teacher's log-softmax, with softxent's limits: a
    -inf logit has probability 0, and a row holding +inf splits its mass evenly over
    those entries (where ``jax.nn.log_softmax`` gives NaN)."""
    log_q = masked_log_softmax(student_logits, -1, None)
    log_p = jax.lax.stop_gradient(masked_log_softmax(teacher_logits, -1, None))
    return log_q, log_p
