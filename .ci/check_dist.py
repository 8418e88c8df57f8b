"""Check what the sdist and the wheel contain, and print their file counts and sizes.

Usage: python .ci/check_dist.py SOURCE_TREE DIST_DIR

SOURCE_TREE is the committed tree the sdist was built from (git archive of HEAD). The sdist must
hold every file of the package, tests/, benchmarks/ and docs/ in it, README.md and LICENSE, and
nothing generated; the wheel must hold every Python module, every extension module that setup.py
builds on this machine, the stubs (*.pyi), py.typed and the license, and no sources or C.
"""
import pathlib
import sys
import tarfile
import zipfile

GENERATED = (".c", ".cpp", ".so", ".pyd", ".o", ".pyc", ".html")


def fail(message):
    sys.exit(f"check_dist: {message}")


def main(source, dist):
    source, dist = pathlib.Path(source), pathlib.Path(dist)
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")

    with tarfile.open(sdist) as tar:
        members = [m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()]
    shipped = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()
               and p.relative_to(source).parts[0] in ("fastopt", "tests", "benchmarks", "docs")}
    shipped |= {"README.md", "LICENSE", "pyproject.toml", "setup.py", "MANIFEST.in"}
    missing = sorted(shipped - set(members))
    if missing:
        fail(f"{sdist.name} lacks {missing}")
    # Hand-written C: tests/conformance/c/ (the known-answer reader of
    # tests/conformance/test_vectors.py) and benchmarks/tools/ab_mixed_design.c (the prototype
    # behind fastopt/_pxi/mixed.pxi's design). Cython's output never lands in either.
    handwritten = ("tests/conformance/c/", "benchmarks/tools/ab_mixed_design.c")
    generated = [m for m in members if (m.endswith(GENERATED) and not m.startswith(handwritten))
                 or m.startswith("build/") or "__pycache__" in m]
    if generated:
        fail(f"{sdist.name} holds generated files {generated}")

    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        sizes = {i.filename: i.file_size for i in whl.infolist()}
    package = sorted(m for m in shipped if m.startswith("fastopt/"))
    wanted = [m for m in package if m.endswith((".py", ".pyi", "py.typed"))]
    x86 = "x86_64" in wheel.name or "amd64" in wheel.name
    wanted += ["fastopt/_kernels."] + (["fastopt/_kernels_avx2."] if x86 else [])
    lacking = [w for w in wanted if not any(n.startswith(w) for n in names)]
    if not any(n.endswith("/licenses/LICENSE") for n in names):
        lacking.append("LICENSE")
    if lacking:
        fail(f"{wheel.name} lacks {lacking}")
    extensions = [n for n in names if n.endswith((".so", ".pyd"))]
    sources = [n for n in names if n.endswith((".pyx", ".c"))]
    if sources:
        fail(f"{wheel.name} holds sources {sources}")

    for path, count in ((sdist, len(members)), (wheel, len(names))):
        print(f"{path.name}: {count} files, {path.stat().st_size / 1024:.0f} KiB")
    for name in extensions:
        print(f"  {name}: {sizes[name] / 1024:.0f} KiB")


if __name__ == "__main__":
    main(*sys.argv[1:])
