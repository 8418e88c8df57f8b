"""The AVX2 build of fastopt._kernels: the same kernels (see _kernels.pyi)."""
from ._kernels import *  # noqa: F401,F403
