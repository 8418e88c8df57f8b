"""Benchmarks: ``pytest benchmarks/`` (add ``--benchmark-disable`` for a quick smoke run).

Every benchmark sets ``benchmark.group`` so that fastopt and its competitors for one case land in
one table, measured in one run; ``python benchmarks/ratios.py bench.json`` turns a
``--benchmark-json=bench.json`` file into ratios.
"""
