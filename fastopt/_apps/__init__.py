"""The applications: ``python -m fastopt`` and its subcommands (demo, bench, train, surfaces),
with what only they use (the MLP and its data, the course-style training loop, BLAS threads,
the shared argparse types).

They import the library (fastopt, fastopt.reference, fastopt.lab, fastopt.torch); the library
never imports them (tests/package/test_imports.py checks it).
"""
