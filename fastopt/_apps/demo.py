"""The assignment's experiment, run with fastopt and with the reference side by side.

Used by ``python -m fastopt`` (see ``fastopt/__main__.py``); docs/contract.md §6 fixes
the runs.
"""
import os
import sys
import time

import numpy as np

import fastopt.lab
import fastopt.reference.lab

from . import loops as _loops

BACKENDS = {"fastopt": fastopt.lab, "reference": fastopt.reference.lab}
LAYERS = [2, 5, 2, 1]

# name -> model() keyword arguments. The first seven are the assignment's runs; "rmsprop" is our
# addition, run only when asked for with --only.
RUNS = {
    "gd": dict(optimizer="gd", learning_rate=0.0007),
    "momentum": dict(optimizer="momentum", beta=0.9, learning_rate=0.0007),
    "adam": dict(optimizer="adam", learning_rate=0.0007),
    "gd+update_lr": dict(optimizer="gd", learning_rate=0.1, decay="update_lr"),
    "gd+schedule_lr_decay": dict(optimizer="gd", learning_rate=0.1, decay="schedule_lr_decay"),
    "momentum+schedule_lr_decay": dict(optimizer="momentum", beta=0.9, learning_rate=0.1,
                                       decay="schedule_lr_decay"),
    "adam+schedule_lr_decay": dict(optimizer="adam", learning_rate=0.01,
                                   decay="schedule_lr_decay"),
    "rmsprop": dict(optimizer="rmsprop", beta=0.9, learning_rate=0.0007),
}
DEFAULT_RUNS = [name for name in RUNS if name != "rmsprop"]
# Progress on stderr (its epoch() and done()): the one train uses too.
Progress = _loops.Progress


def train(name, backend, num_epochs, progress=None, label=None):
    """Run one experiment; return a dict with parameters, per-epoch costs and wall time."""
    lab = BACKENDS[backend]
    kwargs = dict(RUNS[name])
    if "decay" in kwargs:
        kwargs["decay"] = getattr(lab, kwargs["decay"])
    X, Y = lab.load_dataset()
    history = []

    def on_epoch(epoch, cost, learning_rate):
        history.append(cost)
        if progress is not None:
            progress.epoch(label or f"{name} ({backend})", epoch, num_epochs)

    start = time.perf_counter()
    parameters = lab.model(X, Y, LAYERS, num_epochs=num_epochs, print_cost=False,
                           on_epoch=on_epoch, **kwargs)
    seconds = time.perf_counter() - start
    if progress is not None:
        progress.done(label or f"{name} ({backend})", seconds)
    accuracy = float(np.mean(lab.predict_dec(parameters, X) == Y))
    return dict(parameters=parameters, costs=np.array(history), seconds=seconds,
                accuracy=accuracy, X=X, Y=Y, lab=lab)


def same_bits(a, b):
    """True when two parameter dicts hold the same arrays, bit for bit."""
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
        for k in a)


def run_all(names, backends, num_epochs, out=sys.stdout, progress=None):
    """Train every run with every backend; print the table; return the results."""
    results = {}
    for i, name in enumerate(names, 1):
        for backend in backends:
            label = f"[{i}/{len(names)}] {name} ({backend})"
            results[name, backend] = train(name, backend, num_epochs, progress, label)
    print_table(results, names, backends, num_epochs, out)
    return results


def print_table(results, names, backends, num_epochs, out=sys.stdout):
    checkpoints = list(range(0, num_epochs, 1000))
    first = backends[0]
    header = ["run"] + [f"cost@{e}" for e in checkpoints] + ["final", "accuracy"]
    header += [f"{b} s" for b in backends]
    if len(backends) == 2:
        header += ["speed-up", "bit-identical"]
    rows = []
    for name in names:
        r = results[name, first]
        row = [name] + [f"{r['costs'][e]:.6f}" for e in checkpoints]
        row += [f"{r['costs'][-1]:.6f}" if num_epochs else "-", f"{r['accuracy']:.4f}"]
        row += [f"{results[name, b]['seconds']:.2f}" for b in backends]
        if len(backends) == 2:
            fast, ref = results[name, "fastopt"], results[name, "reference"]
            row.append(f"{ref['seconds'] / fast['seconds']:.2f}x")
            row.append("yes" if same_bits(fast["parameters"], ref["parameters"]) else "NO")
        rows.append(row)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(f"The assignment's experiment: layers {LAYERS}, {num_epochs} epochs, batch 64, "
          f"costs from the {first} run", file=out)
    print(line.format(*header), file=out)
    for row in rows:
        print(line.format(*row), file=out)
    if len(backends) == 2:
        total_fast = sum(results[n, "fastopt"]["seconds"] for n in names)
        total_ref = sum(results[n, "reference"]["seconds"] for n in names)
        print(f"total: fastopt {total_fast:.2f} s, reference {total_ref:.2f} s", file=out)


def require_matplotlib():
    """Import matplotlib with a file backend, or exit with how to install it."""
    try:
        import matplotlib
    except ImportError:
        sys.exit("--plot needs matplotlib, which is an optional extra: "
                 "pip install 'fastopt[plot]'  (or: pip install matplotlib)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot(results, names, backend, directory, plt):
    """Write costs.png (raw and EWA-smoothed cost curves) and boundaries.png to ``directory``."""
    os.makedirs(directory, exist_ok=True)
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        costs = results[name, backend]["costs"]
        ax.plot(costs, color="0.75", lw=0.6, label="cost per epoch")
        ax.plot(fastopt.ewa(costs, beta=0.98, bias_correction=True), color="C0", lw=1.5,
                label="fastopt.ewa, beta 0.98")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cost")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    costs_path = os.path.join(directory, "costs.png")
    fig.savefig(costs_path, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = results[name, backend]
        X, Y, lab = r["X"], r["Y"], r["lab"]
        xx, yy = np.meshgrid(np.linspace(X[0].min() - 1, X[0].max() + 1, 300),
                             np.linspace(X[1].min() - 1, X[1].max() + 1, 300))
        grid = np.vstack([xx.ravel(), yy.ravel()])
        zz = lab.predict_dec(r["parameters"], grid).reshape(xx.shape)
        ax.contourf(xx, yy, zz, cmap=plt.cm.Spectral, alpha=0.8)
        ax.scatter(X[0], X[1], c=Y[0], cmap=plt.cm.Spectral, s=8, edgecolors="k", linewidths=0.3)
        ax.set_title(f"{name}: accuracy {r['accuracy']:.3f}", fontsize=10)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    boundary_path = os.path.join(directory, "boundaries.png")
    fig.savefig(boundary_path, dpi=110)
    plt.close(fig)
    return [costs_path, boundary_path]
