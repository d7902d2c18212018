"""Matrix decompositions (batched over leading axes): ``cholesky``, ``eigh``, ``eigvalsh``,
``svd`` and ``qr``. Each output is its own recorded op whose backward is the part of the
decomposition's gradient that comes through it, written in gpugrad ops (every order works).

``cholesky`` and ``eigh`` read the lower triangle only, as NumPy does; their gradients are the
gradients of that: zero above the diagonal. Symmetrize the input (``(a + a.mT) / 2``) for a
symmetric gradient. Gradients of eigenvectors and singular vectors need distinct eigenvalues and
singular values (they divide by their differences).
"""

from __future__ import annotations

from collections import namedtuple

from .. import backend
from ..tensor import Tensor
from .arrange import tril
from .base import record
from .linalg import matmul
from .matrix import T, matrices, solve, square_matrices
from .shape import expand_dims

EighResult = namedtuple("EighResult", "eigenvalues eigenvectors")
SVDResult = namedtuple("SVDResult", "U S Vh")
QRResult = namedtuple("QRResult", "Q R")


def _xp(d):
    return backend.get_array_module(d)


def _eye(n: int, like: Tensor) -> Tensor:
    return Tensor._make(_xp(like.data).eye(n, dtype=like.dtype))


def _lower(s: Tensor) -> Tensor:
    """The gradient with respect to a function of the lower triangle of a symmetric matrix whose
    gradient, as a full matrix, is ``s``: the diagonal of ``s`` and twice the symmetric part below it."""
    return tril(s + T(s), -1) + s * _eye(s.shape[-1], s)


def cholesky(a) -> Tensor:
    """The lower-triangular L with L·Lᵀ = a (read from the lower triangle of ``a``)."""
    a = square_matrices(a, "cholesky")
    out = _xp(a.data).linalg.cholesky(a.data)

    def bwd(g, L, need):
        # I. Murray, "Differentiation of the Cholesky decomposition" (2016): S = L⁻ᵀ Φ(Lᵀ Ḡ) L⁻¹
        n = L.shape[-1]
        phi = tril(matmul(T(L), g)) * (1.0 - 0.5 * _eye(n, L))
        s = solve(T(L), T(solve(T(L), T(phi))))
        return (_lower(0.5 * (s + T(s))),)

    return record(out, (a,), bwd, "cholesky")


def eigh(a) -> EighResult:
    """``(eigenvalues, eigenvectors)``, a named pair: the eigenvalues (ascending) and eigenvectors
    (columns) of symmetric matrices, read from the lower triangle."""
    a = square_matrices(a, "eigh")
    w_arr, v_arr = _xp(a.data).linalg.eigh(a.data)
    n = a.shape[-1]
    box = {}

    def bwd_w(g, w, need):
        v = box["v"]
        return (_lower(matmul(v * expand_dims(g, -2), T(v))),)

    def bwd_v(g, v, need):
        w = box["w"]
        eye = _eye(n, w)
        diff = expand_dims(w, -2) - expand_dims(w, -1) + eye  # w_j − w_i off the diagonal
        f = (1.0 - eye) / diff
        return (_lower(matmul(matmul(v, f * matmul(T(v), g)), T(v))),)

    w = record(w_arr, (a,), bwd_w, "eigh_values")
    v = record(v_arr, (a,), bwd_v, "eigh_vectors")
    box["w"], box["v"] = w, v
    return EighResult(w, v)


def eigvalsh(a) -> Tensor:
    """The eigenvalues of symmetric matrices (ascending), read from the lower triangle."""
    return eigh(a)[0]


def svd(a, full_matrices: bool = True, compute_uv: bool = True):
    """``(U, S, Vh)`` (a named triple) with a = U · diag(S) · Vh, or ``s`` alone with ``compute_uv=False``.

    ``u`` and ``vh`` are differentiable with ``full_matrices=False`` (or square matrices)."""
    a = matrices(a, "svd")
    xp = _xp(a.data)
    m, n = a.shape[-2:]
    k = min(m, n)
    full = full_matrices and m != n
    if not compute_uv:
        s_arr = xp.linalg.svd(a.data, compute_uv=False)

        def bwd_s_only(g, s, need):
            u, _, vh = svd(a, full_matrices=False)  # recorded, so the second order sees them move
            return (matmul(u * expand_dims(g, -2), vh),)

        return record(s_arr, (a,), bwd_s_only, "svd_values")
    u_arr, s_arr, vh_arr = xp.linalg.svd(a.data, full_matrices=full_matrices)
    box = {}

    def parts():
        u, s, vh = box["u"], box["s"], box["vh"]
        if full:
            u, vh = u[..., :, :k], vh[..., :k, :]
        eye = _eye(k, s)
        s2 = s * s
        f = (1.0 - eye) / (expand_dims(s2, -2) - expand_dims(s2, -1) + eye)
        return u, s, T(vh), f

    def bwd_s(g, s_out, need):
        u, s, v, f = parts()
        return (matmul(u * expand_dims(g, -2), T(v)),)

    def bwd_u(g, u_out, need):
        if full:
            raise NotImplementedError(
                f"svd: the gradient of u with full_matrices=True is not defined for a non-square shape {a.shape}; "
                "use full_matrices=False"
            )
        u, s, v, f = parts()
        utg = matmul(T(u), g)
        inner = (f * (utg - T(utg))) * expand_dims(s, -2)
        out = matmul(matmul(u, inner), T(v))
        if m > n:
            proj = _eye(m, u) - matmul(u, T(u))
            out = out + matmul(matmul(proj, g), T(v / expand_dims(s, -2)))
        return (out,)

    def bwd_vh(g, vh_out, need):
        if full:
            raise NotImplementedError(
                f"svd: the gradient of vh with full_matrices=True is not defined for a non-square shape {a.shape}; "
                "use full_matrices=False"
            )
        u, s, v, f = parts()
        gv = T(g)
        vtg = matmul(T(v), gv)
        inner = expand_dims(s, -1) * (f * (vtg - T(vtg)))
        out = matmul(matmul(u, inner), T(v))
        if m < n:
            proj = _eye(n, v) - matmul(v, T(v))
            out = out + matmul(matmul(u / expand_dims(s, -2), T(gv)), proj)
        return (out,)

    u = record(u_arr, (a,), bwd_u, "svd_u")
    s = record(s_arr, (a,), bwd_s, "svd_values")
    vh = record(vh_arr, (a,), bwd_vh, "svd_vh")
    box["u"], box["s"], box["vh"] = u, s, vh
    return SVDResult(u, s, vh)


def qr(a, mode: str = "reduced"):
    """``(Q, R)`` (a named pair) with a = Q · R (``mode='reduced'``; ``'r'`` gives r alone). Differentiable for
    matrices with at least as many rows as columns and full column rank."""
    if mode not in ("reduced", "r", "complete"):
        raise ValueError(f"qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    a = matrices(a, "qr")
    m, n = a.shape[-2:]
    q_arr, r_arr = _xp(a.data).linalg.qr(a.data, mode="complete" if mode == "complete" else "reduced")
    box = {}

    def grad(gq, gr):
        # M. Seeger et al., "Auto-differentiating linear algebra" (2017): with M = R Ḡrᵀ − Ḡqᵀ Q,
        # ā = (Ḡq + Q copyltu(M)) R⁻ᵀ, copyltu(M) = the lower triangle of M mirrored above it
        if m < n or (mode == "complete" and m != n):
            raise NotImplementedError(
                f"qr: gradients need at least as many rows as columns (mode 'reduced' or 'r'), got shape {a.shape}"
            )
        q, r = box["q"], box["r"]
        mm = 0.0
        if gr is not None:
            mm = matmul(r, T(gr))
        if gq is not None:
            mm = mm - matmul(T(gq), q)
        low = tril(mm)
        sym = low + T(tril(mm, -1))
        left = matmul(q, sym) if gq is None else gq + matmul(q, sym)
        return T(solve(r, T(left)))  # left · R⁻ᵀ

    q = record(q_arr, (a,), lambda g, o, need: (grad(g, None),), "qr_q")
    r = record(r_arr, (a,), lambda g, o, need: (grad(None, g),), "qr_r")
    box["q"], box["r"] = q, r
    if mode == "r":
        return r
    return QRResult(q, r)

