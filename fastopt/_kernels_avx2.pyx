# cython: language_level=3
# The AVX2 build of the kernels: the same source, compiled with -mavx2 (see setup.py) and chosen
# at import by fastopt._dispatch when the CPU supports it. Nothing may be added here: every
# variant must compute exactly what _kernels.pyx says.
include "_kernels.pyx"
