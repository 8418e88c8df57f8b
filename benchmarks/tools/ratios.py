"""Print, for each benchmark group of a pytest-benchmark JSON file, each entry's time as a ratio.

    pytest benchmarks/ --benchmark-json=bench.json
    python benchmarks/tools/ratios.py bench.json [--baseline fastopt] [--stat median]

For every group the row shows the baseline's time and ``other / baseline`` for every other
entry: ``reference 25.3x`` means the reference takes 25.3 times as long as fastopt.
"""
import argparse
import json
import re
from collections import defaultdict


def entry_name(bench):
    """The implementation part of a benchmark's name: its first parameter (``[impl-...]``)."""
    params = bench.get("params") or {}
    for key in ("impl", "variant", "backend"):
        if key in params:
            return str(params[key])
    match = re.search(r"\[([^\]-]+)", bench["name"])
    return match.group(1) if match else bench["name"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json_file")
    ap.add_argument("--baseline", default="fastopt")
    ap.add_argument("--stat", default="median", choices=["min", "median", "mean"])
    args = ap.parse_args(argv)
    with open(args.json_file) as f:
        data = json.load(f)
    groups = defaultdict(dict)
    for bench in data["benchmarks"]:
        groups[bench["group"]][entry_name(bench)] = bench["stats"][args.stat]
    print(f"{'group':<34} {args.baseline + ' (' + args.stat + ')':>20}  ratios (other / baseline)")
    for group in sorted(groups, key=_natural):
        times = groups[group]
        base = times.get(args.baseline)
        if base is None:
            continue
        others = "  ".join(f"{name} {t / base:.2f}x" for name, t in sorted(times.items())
                           if name != args.baseline)
        print(f"{group:<34} {base * 1e6:>17.2f} us  {others}")


def _natural(text):
    """Sort key in which numbers compare as numbers ("n=1e+05" before "n=1e+06", 2 before 10)."""
    key = []
    for token in re.split(r"(\d+(?:\.\d+)?(?:e[+-]?\d+)?)", text):
        try:
            key.append((0, float(token), ""))
        except ValueError:
            key.append((1, 0.0, token))
    return key


if __name__ == "__main__":
    main()
