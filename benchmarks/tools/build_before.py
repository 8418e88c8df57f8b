"""Build an earlier commit's whole package as ``fastopt_before``, for before/after benchmarks in
one process (``benchmarks/test_adam_vs_torch_fused.py`` and ``test_options_vs_torch.py``
import it when ``FASTOPT_BEFORE`` names its folder).

    python benchmarks/tools/build_before.py e02b80d /tmp/fastopt-before
    FASTOPT_BEFORE=/tmp/fastopt-before pytest benchmarks/ --benchmark-json=bench.json

The whole package, not only its kernels: the array-level functions' Python validation is part of
what a small-array call costs. The old sources are renamed (``fastopt`` -> ``fastopt_before`` in
absolute imports and in the dispatch table) and compiled with the release flags of that commit's
setup.py, every variant, in place in ``DIR``; nothing in this work tree is touched.
"""
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile

NAME = "fastopt_before"


def main(rev, directory):
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev, "fastopt", "setup.py"], check=True,
                             capture_output=True).stdout
    target = os.path.join(directory, NAME)
    shutil.rmtree(target, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    os.rename(os.path.join(directory, "fastopt"), target)
    for root, _, files in os.walk(target):
        for name in files:
            if not name.endswith((".py", ".pyx", ".pyi")):
                continue
            path = os.path.join(root, name)
            with open(path) as f:
                text = f.read()
            # Absolute imports and module-name strings only; documentation text is left alone.
            text = re.sub(r"^(\s*)(import|from) fastopt\b", rf"\1\2 {NAME}", text, flags=re.M)
            text = text.replace('"fastopt._kernels', f'"{NAME}._kernels')
            with open(path, "w") as f:
                f.write(text)
    setup = os.path.join(directory, "setup.py")
    with open(setup) as f:
        text = f.read()
    text = text.replace('"fastopt._kernels', f'"{NAME}._kernels').replace(
        '"fastopt/_kernels', f'"{NAME}/_kernels')
    with open(setup, "w") as f:
        f.write(text)
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=directory,
                   check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main(*sys.argv[1:3])
