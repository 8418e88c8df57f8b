# cython: language_level=3
# The AVX-512 build of the kernels, made only with FASTOPT_AVX512=1 (see setup.py: on the CPUs
# measured so far it did not pay) and chosen at import by fastopt._dispatch when the CPU and the
# OS support it. Nothing may be added here: every variant must compute exactly what
# _kernels.pyx says.
include "_kernels.pyx"
