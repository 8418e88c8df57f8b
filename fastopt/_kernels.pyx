# cython: language_level=3
"""Fused, in-place optimizer kernels over contiguous float32/float64 buffers.

Every kernel here assumes *valid* input: the Python layer (``fastopt._validation``) has already
checked dtypes, shapes, contiguity, writeability, overlap and hyperparameter ranges, so the loops
run with bounds checks off and the GIL released.

The arithmetic contract (../shared/SPEC.md section 1) shapes every line:

* Each hyperparameter scalar arrives as a C double (a Python float) and is rounded **once** to the
  array dtype with ``<floating>``, exactly what NumPy 2 does for ``python_float * float32_array``
  (NEP 50). ``1.0 - beta`` is computed in double first, as Python computes ``1 - beta``.
* Each loop body evaluates the same expression tree, in the same order, as the NumPy reference in
  ``fastopt/reference/__init__.py``. ``a * b / c`` there is ``(a * b) / c`` here.
* ``float op float`` stays float in C on x86-64/aarch64 (FLT_EVAL_METHOD == 0), and the build turns
  off FMA contraction, so vector body, scalar tail and every SIMD width give the same bits.
"""
from cython cimport floating
from libc.math cimport pow, sqrt, sqrtf


cdef inline floating _sqrt(floating x) noexcept nogil:
    # sqrtf for float: correctly rounded like NumPy's float32 sqrt, and it vectorises to sqrtps.
    # (sqrt((double)x) rounded to float gives the same bits, but is half the SIMD width.)
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


# --- gradient descent -------------------------------------------------------------------------

cdef void _sgd(floating[::1] p, const floating[::1] g, double lr) noexcept nogil:
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating lr_ = <floating>lr
    for i in range(n):
        p[i] = p[i] - lr_ * g[i]


def sgd(floating[::1] p, const floating[::1] g, double lr):
    """p = p - lr*g, in place over 1-D contiguous views."""
    with nogil:
        _sgd(p, g, lr)


# --- momentum (exponentially weighted average form) -------------------------------------------

cdef void _momentum(floating[::1] p, const floating[::1] g, floating[::1] v,
                    double lr, double beta) noexcept nogil:
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating lr_ = <floating>lr
    cdef floating b = <floating>beta
    cdef floating c = <floating>(1.0 - beta)
    cdef floating vi
    for i in range(n):
        vi = b * v[i] + c * g[i]
        v[i] = vi
        p[i] = p[i] - lr_ * vi


def momentum(floating[::1] p, const floating[::1] g, floating[::1] v, double lr, double beta):
    """v = beta*v + (1-beta)*g; p = p - lr*v, in place over 1-D contiguous views."""
    with nogil:
        _momentum(p, g, v, lr, beta)


# --- RMSProp ----------------------------------------------------------------------------------

cdef void _rmsprop(floating[::1] p, const floating[::1] g, floating[::1] s,
                   double lr, double beta, double eps) noexcept nogil:
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating lr_ = <floating>lr
    cdef floating b = <floating>beta
    cdef floating c = <floating>(1.0 - beta)
    cdef floating e = <floating>eps
    cdef floating gi, si
    for i in range(n):
        gi = g[i]
        si = b * s[i] + c * (gi * gi)
        s[i] = si
        p[i] = p[i] - (lr_ * gi) / (_sqrt(si) + e)


def rmsprop(floating[::1] p, const floating[::1] g, floating[::1] s,
            double lr, double beta, double eps):
    """s = beta*s + (1-beta)*g*g; p = p - lr*g / (sqrt(s) + eps), in place."""
    with nogil:
        _rmsprop(p, g, s, lr, beta, eps)


# --- Adam -------------------------------------------------------------------------------------

cdef void _adam(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
                double lr, double beta1, double beta2, double eps,
                double bias1, double bias2) noexcept nogil:
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating lr_ = <floating>lr
    cdef floating b1 = <floating>beta1
    cdef floating c1 = <floating>(1.0 - beta1)
    cdef floating b2 = <floating>beta2
    cdef floating c2 = <floating>(1.0 - beta2)
    cdef floating e = <floating>eps
    # bias1 = 1 - beta1**t and bias2 = 1 - beta2**t were computed by Python (float.__pow__).
    cdef floating d1 = <floating>bias1
    cdef floating d2 = <floating>bias2
    cdef floating gi, mi, vi
    for i in range(n):
        gi = g[i]
        mi = b1 * m[i] + c1 * gi
        m[i] = mi
        vi = b2 * v[i] + c2 * (gi * gi)
        v[i] = vi
        # Divisions, not multiplications by a reciprocal: x / d and x * (1/d) differ in the
        # last bit for about a third of inputs, and the reference divides.
        p[i] = p[i] - (lr_ * (mi / d1)) / (_sqrt(vi / d2) + e)


def adam(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
         double lr, double beta1, double beta2, double eps, double bias1, double bias2):
    """Adam step in place; bias1 = 1 - beta1**t and bias2 = 1 - beta2**t come from Python."""
    with nogil:
        _adam(p, g, m, v, lr, beta1, beta2, eps, bias1, bias2)


# --- exponentially weighted average (a serial recurrence: one thread, no SIMD) -----------------

cdef void _ewa(const floating[:] x, floating[:] out, double beta, bint bias_correction) noexcept nogil:
    cdef Py_ssize_t k, n = x.shape[0]
    cdef floating b = <floating>beta
    cdef floating c = <floating>(1.0 - beta)
    cdef floating v = 0
    cdef floating d
    for k in range(n):
        v = b * v + c * x[k]
        if bias_correction:
            # 1 - beta**(k+1) in double with C pow, as Python's float.__pow__ computes it, then
            # rounded once. Once it rounds to exactly 1 it stays 1 (beta**k only shrinks), and
            # v / 1 == v bit for bit, so the remaining pow calls (~20 ns each) can be skipped:
            # for beta = 0.9 in float32 that is after 165 values.
            d = <floating>(1.0 - pow(beta, <double>(k + 1)))
            if d == 1:
                bias_correction = False
            out[k] = v / d
        else:
            out[k] = v


def ewa(const floating[:] x, floating[:] out, double beta, bint bias_correction):
    """out[k] = v_k (optionally / (1 - beta**(k+1))), v_k = beta*v_{k-1} + (1-beta)*x[k]."""
    with nogil:
        _ewa(x, out, beta, bias_correction)
