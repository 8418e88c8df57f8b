"""Benchmarks: ``pytest benchmarks/`` (add ``--benchmark-disable`` for a quick smoke run).

Every benchmark sets ``benchmark.group`` so that fastopt and its competitors for one case land in
one table, measured in one run; ``python benchmarks/tools/ratios.py bench.json`` turns a
``--benchmark-json=bench.json`` file into ratios.

The benchmark files are the ``test_*.py`` here, each named by what it measures. The stand-alone
scripts (A/B timings call for call in one process, building an earlier commit, ratios, ULP
distances) are in ``tools/``, described in tools/README.md; pytest never collects them,
whatever their names.
"""

collect_ignore = ["tools"]
