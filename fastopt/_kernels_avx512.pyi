"""The AVX-512 build of fastopt._kernels (FASTOPT_AVX512=1): the same kernels (see _kernels.pyi)."""
from ._kernels import *  # noqa: F401,F403
