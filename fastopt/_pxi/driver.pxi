# --- the updates -------------------------------------------------------------------------------
#
# One fused pass per step, whatever the options (docs/contract.md §2 and §7). Each rule has:
#
# * a struct of its arrays (as raw pointers: an option's state array may be absent, NULL) and its
#   hyperparameters as doubles, filled once per call by the ``def`` entry point, which also
#   checks in O(1) that every array it writes through has the parameter's length;
# * ``_<rule>_loop``: the per-element arithmetic over [start, stop), written once over
#   ``floating`` and over compile-time *option flags*. A flag is a fused type of empty structs,
#   so ``if decay_t is _L2`` is decided by Cython when it generates each specialisation: every
#   combination of options is its own branch-free loop that GCC vectorises (an option that is
#   off costs nothing, not even a test). Scalars are rounded once to ``floating`` at the top of
#   the loop function, from the doubles Python computed (docs/contract.md §1);
# * ``_<rule>_pick_<flags>``: inline stages that turn the runtime flags into that specialisation,
#   one or two flags a stage, each named after what it decides (``_adam_pick_amsgrad``), the
#   outermost called by ``_<rule>_range`` with the dtype;
# * the shared driver ``_run``: the whole array on the calling thread, or one contiguous chunk
#   per thread above the rule's measured threshold.

cdef struct _Off:
    char unused
cdef struct _On:
    char unused
cdef struct _L2:
    char unused
cdef struct _Decoupled:
    char unused
cdef struct _First:
    char unused
cdef struct _Second:
    char unused
cdef struct _Both:
    char unused
cdef struct _SecondFMA:
    char unused
cdef struct _BothFMA:
    char unused

cdef _Off _OFF
cdef _On _ON
cdef _L2 _L2_DECAY
cdef _Decoupled _DECOUPLED
cdef _First _FIRST
cdef _Second _SECOND
cdef _Both _BOTH
cdef _SecondFMA _SECOND_FMA
cdef _BothFMA _BOTH_FMA

ctypedef fused scale_t:      # the gradient is multiplied by a scalar first (clipping, maximize)
    _Off
    _On
ctypedef fused decay_t:      # weight decay of SGD, Momentum, RMSProp, Adagrad: none or L2
    _Off
    _L2
ctypedef fused adam_decay_t:  # Adam's: none, L2 (coupled), or decoupled (AdamW)
    _Off
    _L2
    _Decoupled
ctypedef fused nesterov_t:
    _Off
    _On
ctypedef fused heavy_t:      # SGD's heavy-ball buffer: none, its first step, a later step
    _Off
    _First
    _On
ctypedef fused centered_t:
    _Off
    _On
ctypedef fused buffer_t:     # RMSProp's momentum buffer
    _Off
    _On
ctypedef fused amsgrad_t:
    _Off
    _On
ctypedef fused bias_t:       # Adam's bias divisions still done: none, the second only, both;
    _Off                     # the last two without the divider (docs/contract.md §10)
    _Second
    _Both
    _SecondFMA
    _BothFMA


ctypedef void (*_range_fn)(const void* args, Py_ssize_t start, Py_ssize_t stop) noexcept nogil


cdef inline Py_ssize_t _chunk_size(Py_ssize_t n, int nt, Py_ssize_t multiple) noexcept nogil:
    # One contiguous chunk per thread, a multiple of ``multiple`` items so that two threads never
    # write the same cache line: 16 for float32 (64 bytes), 32 where a uint16 copy is written too
    # (the 16-bit parameters, mixed.pxi). In the prange body below, start and stop must be
    # assigned directly (not through a pointer): that is what makes Cython keep them
    # thread-private.
    return ((n + nt - 1) // nt + multiple - 1) // multiple * multiple


cdef void _run_in(_range_fn fn, const void* args, Py_ssize_t n, Py_ssize_t threshold,
                  Py_ssize_t multiple) noexcept nogil:
    """Run ``fn`` over [0, n): serially, or from ``threshold`` items one chunk per thread, each
    a multiple of ``multiple`` items."""
    cdef Py_ssize_t c, start, stop, size
    cdef int nt = _threads_for(n, threshold)
    if nt == 1:
        fn(args, 0, n)
        return
    size = _chunk_size(n, nt, multiple)
    for c in prange(nt, num_threads=nt, schedule="static", chunksize=1):
        start = min(c * size, n)
        stop = min(start + size, n)
        fn(args, start, stop)


cdef inline void _run(_range_fn fn, const void* args, Py_ssize_t n,
                      Py_ssize_t threshold) noexcept nogil:
    """Run ``fn`` over [0, n): serially, or one chunk per thread from ``threshold`` items."""
    _run_in(fn, args, n, threshold, 16)


cdef inline floating _max_nan(floating current, floating new) noexcept nogil:
    # np.maximum's rule as the reference writes it: the larger, NaN wins, a tie keeps current.
    return new if (new > current or new != new) else current


cdef inline floating* _ptr(floating[::1] x) noexcept:
    # NULL for an absent array (an option that is off) or an empty one.
    if x is None or x.shape[0] == 0:
        return NULL
    return &x[0]


cdef inline const floating* _cptr(const floating[::1] x) noexcept:
    if x is None or x.shape[0] == 0:
        return NULL
    return &x[0]


cdef inline char* _shift(char* x, Py_ssize_t start) noexcept nogil:
    # A float32 array pointer moved to item ``start`` (NULL, an absent array, stays NULL): the
    # rules' ``_<rule>_at`` functions, which point a copy of a rule's struct at one chunk.
    return NULL if x == NULL else x + start * <Py_ssize_t>sizeof(float)


cdef int _length_error(str name, Py_ssize_t length, Py_ssize_t n, str of="param") except -1:
    raise ValueError(f"{name} has {length} items; expected {n}, the length of {of}")
