"""Where fastopt.torch's packed buffers live: ONE allocation function, :func:`allocate`.

Every packed buffer (parameters, gradients, each state, the step counts) comes from here, so a
measurement can switch all of them at once by setting :data:`ALLOCATOR`:

- ``"numpy"`` (the default): ``np.zeros`` wrapped with ``torch.from_numpy``. NumPy asks the
  kernel for transparent huge pages (``madvise(MADV_HUGEPAGE)``) on allocations of 4 MiB and
  more, which cuts the TLB misses of a pass over a large buffer; torch's CPU allocator does not.
- ``"torch"``: ``torch.zeros``, viewed by NumPy with ``Tensor.numpy()``.

The tensor returned is always ``torch.from_numpy`` of the ndarray returned, so the ndarray lives
as long as any view of the buffer does (fastopt.torch recognises its buffers by it).

Either way the buffer starts on a 64-byte boundary (a cache line; torch's own allocator gives
the same), and NumPy and torch see the same memory: the kernels write through the NumPy array,
torch reads the tensor.
"""
import numpy as np
import torch

ALLOCATOR = "numpy"
"""``"numpy"`` or ``"torch"``: which allocator :func:`allocate` uses (read at each call)."""

ALIGN_BYTES = 64
PAGE_BYTES = 4096
# 17 cache lines: the starts of up to 64 staggered buffers fall on 64 different lines of a page.
STAGGER_BYTES = 17 * ALIGN_BYTES

# A bfloat16 buffer is a uint16 ndarray of its bits (NumPy has no bfloat16; fastopt._half takes
# uint16 as bfloat16 bits), viewed by torch as bfloat16; a float16 buffer is np.float16 both ways.
TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
                np.dtype(np.uint16): torch.bfloat16, np.dtype(np.float16): torch.float16}
NUMPY_DTYPES = {t: n for n, t in TORCH_DTYPES.items()}


def as_numpy(tensor):
    """The ndarray sharing a buffer tensor's memory (a bfloat16 tensor as its uint16 bits)."""
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.uint16).numpy()
    return tensor.numpy()


def _as_tensor(array):
    tensor = torch.from_numpy(array)
    return tensor.view(torch.bfloat16) if array.dtype == np.uint16 else tensor


def allocate(numel, dtype, stagger=0):
    """A zeroed 1-D buffer of ``numel`` items of NumPy ``dtype`` (a key of
    :data:`TORCH_DTYPES`: float32, float64, float16, or uint16 for bfloat16), 64-byte aligned, as ``(ndarray, tensor)`` sharing one memory.

    Parameters
    ----------
    numel : int
    dtype : numpy.dtype
    stagger : int, optional
        With NumPy's allocator, the buffer starts ``STAGGER_BYTES * stagger`` bytes (modulo
        4096) into a 4 KiB page, so that buffers given different values do not start at the
        same offset within their pages (4K aliasing; see ``fastopt.torch._base._Buffers``).

    Returns
    -------
    (numpy.ndarray, torch.Tensor)
    """
    dtype = np.dtype(dtype)
    if ALLOCATOR == "torch":
        array = as_numpy(torch.zeros(numel, dtype=TORCH_DTYPES[dtype]))  # holds the tensor
        return array, _as_tensor(array)
    if ALLOCATOR != "numpy":
        raise ValueError(f"fastopt.torch._buffers.ALLOCATOR must be 'numpy' or 'torch', got "
                         f"{ALLOCATOR!r}")
    pad = (PAGE_BYTES + ALIGN_BYTES) // dtype.itemsize
    raw = np.zeros(numel + pad, dtype)
    target = (STAGGER_BYTES * stagger) % PAGE_BYTES
    offset = ((target - raw.ctypes.data) % PAGE_BYTES) // dtype.itemsize
    array = raw[offset:offset + numel]
    return array, _as_tensor(array)
