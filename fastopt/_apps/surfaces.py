"""``python -m fastopt surfaces``: the course's "problem of local optima", made visible.

Every optimizer fastopt has (:mod:`fastopt._apps.registry`) runs, as a ``fastopt`` object over one
2-element float64 array, on two-dimensional test functions with analytic NumPy gradients: a
saddle point, a plateau, Rosenbrock's valley, Beale's function and Himmelblau's four minima. A
table tells, per function and optimizer, how many steps it took to come within a tolerance of
the minimum it reached, where it ended and which minimum that is; ``--plot`` draws each
function's contour map with every trajectory and the loss against steps.

Learning rates. One rate for all would be unfair to someone: plain gradient descent is stable on
Rosenbrock from (-2, 2) only below lr 5e-4 (2 over the curvature 4002 there), where Adam, whose
steps are about lr long, would need some 10,000 steps to walk the valley. So each optimizer runs
at the rate of :data:`LR_GRID` that reaches the tolerance in the fewest steps (or, if none does,
ends lowest): each at its best, and the table shows the rate chosen. Constructed with ``lr=``
only, every other hyperparameter at its class default.

Then the high-dimensional argument of the lecture: at a critical point of a function of d
variables, the Hessian's eigenvalues all positive (a minimum) is rare when d grows. For random
symmetric matrices (the Gaussian orthogonal ensemble) the fraction is measured for d = 1..10
beside the lecture's heuristic 2**-d (each direction curving up or down by a coin toss); the true
fraction falls faster, like exp(-d**2 ln(3)/4) (Dean & Majumdar 2006).
"""
import math
import os
import sys

import numpy as np

from . import cli as _cli, registry as _registry

LR_GRID = tuple(float(f"{m}e{e}") for e in range(-5, 0) for m in (1, 3)) + (1.0,)


class Surface:
    """A test function of (x, y) with its gradient, start and known minima.

    Parameters
    ----------
    name : str
        Short name (the PNG's file name).
    formula : str
        The function, as printed and in the plot's title.
    f, grad : callable
        ``f(x, y)`` (works on arrays for the contour plot) and ``grad(x, y) -> (df/dx, df/dy)``.
    start : tuple of float
    minima : list of (label, (x, y))
        Every local minimum worth naming.
    extent : tuple
        ``(xmin, xmax, ymin, ymax)`` of the contour plot.
    log_levels : bool
        Contour levels spaced logarithmically (for steep valleys).
    lesson : str
        What the function shows, one line.
    """

    def __init__(self, name, formula, f, grad, start, minima, extent, log_levels, lesson):
        self.name, self.formula, self.f, self.grad = name, formula, f, grad
        self.start, self.minima, self.extent = start, minima, extent
        self.log_levels, self.lesson = log_levels, lesson


def _saddle():
    return Surface(
        "saddle", "x^2 - y^2 + y^4/4",
        lambda x, y: x * x - y * y + y ** 4 / 4,
        lambda x, y: (2 * x, -2 * y + y ** 3),
        (1.0, 1e-3), [("(0, +sqrt 2)", (0.0, math.sqrt(2))), ("(0, -sqrt 2)", (0.0, -math.sqrt(2)))],
        (-1.5, 1.5, -2.0, 2.0), False,
        "a saddle at (0, 0); starting 0.001 off it, the gradient along y is tiny at first")


def _plateau():
    return Surface(
        "plateau", "1 - exp(-(x^2 + y^2)/2)",
        lambda x, y: 1 - np.exp(-(x * x + y * y) / 2),
        lambda x, y: (x * math.exp(-(x * x + y * y) / 2), y * math.exp(-(x * x + y * y) / 2)),
        (3.0, 2.0), [("(0, 0)", (0.0, 0.0))],
        (-4.0, 4.0, -3.0, 3.0), False,
        "flat far from the minimum: the gradient at the start is 0.0054")


def _rosenbrock():
    return Surface(
        "rosenbrock", "(1 - x)^2 + 100 (y - x^2)^2",
        lambda x, y: (1 - x) ** 2 + 100 * (y - x * x) ** 2,
        lambda x, y: (-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)),
        (-2.0, 2.0), [("(1, 1)", (1.0, 1.0))],
        (-2.5, 2.0, -1.0, 4.5), True,
        "a long curved valley, steep across and flat along")


def _beale():
    def f(x, y):
        return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2
                + (2.625 - x + x * y ** 3) ** 2)

    def grad(x, y):
        a, b, c = 1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y ** 3
        return (2 * a * (y - 1) + 2 * b * (y * y - 1) + 2 * c * (y ** 3 - 1),
                2 * a * x + 4 * b * x * y + 6 * c * x * y * y)

    return Surface("beale", "(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
                   f, grad, (3.0, 4.0), [("(3, 0.5)", (3.0, 0.5))],
                   (-4.5, 4.5, -4.5, 4.5), True,
                   "gradients of 1e5 at the start, a flat floor near the minimum")


def _himmelblau():
    return Surface(
        "himmelblau", "(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        lambda x, y: (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2,
        lambda x, y: (4 * x * (x * x + y - 11) + 2 * (x + y * y - 7),
                      2 * (x * x + y - 11) + 4 * y * (x + y * y - 7)),
        (-0.3, -0.9),
        [("(3, 2)", (3.0, 2.0)), ("(-2.81, 3.13)", (-2.805118, 3.131312)),
         ("(-3.78, -3.28)", (-3.779310, -3.283186)), ("(3.58, -1.85)", (3.584428, -1.848126))],
        (-5.0, 5.0, -5.0, 5.0), True,
        "four minima of equal value; the start is next to the local maximum (-0.27, -0.92)")


SURFACES = {s.name: s for s in (_saddle(), _plateau(), _rosenbrock(), _beale(), _himmelblau())}


def run(surface, cls, lr, steps):
    """Run ``steps`` steps of a fastopt ``cls(lr=lr)`` from the surface's start.

    Returns
    -------
    path : ndarray, shape (k + 1, 2)
        The start and every point after a step (stops early if the point is no longer finite).
    loss : ndarray, shape (k + 1,)
        ``f`` at each point of ``path``.
    """
    p = np.array(surface.start, dtype=np.float64)
    g = np.empty(2)
    opt = cls([p], lr=lr)
    path = np.empty((steps + 1, 2))
    loss = np.empty(steps + 1)
    f, grad = surface.f, surface.grad
    x, y = surface.start
    path[0] = p
    loss[0] = f(x, y)
    grads = [g]
    k = 0
    # Divergent rates overflow: Python's float ** raises OverflowError, NumPy gives inf. Either
    # ends the run, which best_run then counts as diverged.
    with np.errstate(all="ignore"):
        for k in range(1, steps + 1):
            try:
                g[0], g[1] = grad(x, y)
                opt.step(grads)
                x, y = float(p[0]), float(p[1])
                value = f(x, y)
            except OverflowError:
                value = math.inf
            path[k] = p
            loss[k] = value
            if not math.isfinite(value):
                break
    return path[:k + 1], loss[:k + 1]


def outcome(surface, path, loss, tol, radius=0.1):
    """Which minimum a run ended at, and from which step on it stayed within ``tol`` of it.

    "Stayed" rather than "first came": a constant learning rate can leave RMSProp or Adam
    circling a minimum at a distance of about lr, dipping under the tolerance now and then.

    Returns
    -------
    label : str or None
        The minimum within ``radius`` of the last point, else None.
    steps : int or None
        The first step k with ``loss[j] - f(minimum) <= tol`` for every j >= k, or None.
    """
    x, y = path[-1]
    if not (math.isfinite(x) and math.isfinite(y)):
        return None, None
    label, (mx, my) = min(surface.minima, key=lambda m: math.hypot(x - m[1][0], y - m[1][1]))
    if math.hypot(x - mx, y - my) > radius:
        return None, None
    outside = np.nonzero(~(loss - surface.f(mx, my) <= tol))[0]
    if outside.size and outside[-1] == loss.shape[0] - 1:
        return label, None  # not within tol at the end
    return label, (int(outside[-1]) + 1 if outside.size else 0)


def best_run(surface, cls, steps, tol, grid=LR_GRID):
    """Run every rate of ``grid``; keep the one within ``tol`` soonest (else the lowest end).

    Parameters
    ----------
    grid : sequence of float
        Learning rates to try (one value: no choice).

    Returns
    -------
    dict
        ``lr``, ``path``, ``loss``, ``minimum`` (label or None), ``steps`` (int or None).
    """
    best, best_key = None, None
    for lr in grid:
        path, loss = run(surface, cls, lr, steps)
        diverged = path.shape[0] < steps + 1
        label, reached = outcome(surface, path, loss, tol)
        # Sort key: reached before not; fewer steps; then lower final loss; then smaller lr.
        key = (diverged, reached is None, reached if reached is not None else 0,
               loss[-1] if not diverged else math.inf, lr)
        if best_key is None or key < best_key:
            best_key = key
            best = dict(lr=lr, path=path, loss=loss, minimum=label, steps=reached)
    return best


def goe_fractions(dims, samples, seed):
    """Fraction of GOE matrices with every eigenvalue positive, for each dimension.

    ``H = A + A.T`` with ``A`` standard normal: the Gaussian orthogonal ensemble (up to a scale,
    which does not change the signs).

    Returns
    -------
    list of (d, count)
        Matrices, out of ``samples``, that are positive definite.
    """
    rng = np.random.default_rng([seed, 0x60E])
    result = []
    chunk = max(1, min(samples, 2_000_000 // max(1, max(dims)) ** 2))  # ~16 MB of float64
    for d in dims:
        count, done = 0, 0
        while done < samples:
            n = min(chunk, samples - done)
            A = rng.standard_normal((n, d, d))
            H = A + A.transpose(0, 2, 1)
            count += int(np.count_nonzero(np.linalg.eigvalsh(H)[:, 0] > 0))
            done += n
        result.append((d, count))
    return result


def _fmt_point(p):
    x, y = p
    if not (abs(x) < 1e6 and abs(y) < 1e6):  # NaN fails too
        return "diverged"
    return f"({x:.4f}, {y:.4f})"


def print_table(results, steps, tol, out):
    rows = []
    for name, by_opt in results.items():
        for opt_name, r in by_opt.items():
            reached = (f"{r['steps']}" if r["steps"] is not None
                       else f"not within {steps}")
            rows.append([name, opt_name, f"{r['lr']:g}", reached, _fmt_point(r["path"][-1]),
                         r["minimum"] or "none", f"{r['loss'][-1]:.3g}"])
    header = ["function", "optimizer", "lr", "steps to tol", "final point", "minimum",
              "final loss"]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header), file=out)
    previous = None
    for row in rows:
        shown = list(row)
        if row[0] == previous:
            shown[0] = ""
        previous = row[0]
        print(line.format(*shown).rstrip(), file=out)


def print_goe(fractions, samples, out):
    print(file=out)
    print(f"Random symmetric matrices (GOE), {samples:,} per dimension: the fraction with every "
          f"eigenvalue positive (a minimum, not a saddle)", file=out)
    print(f"{'d':>3}  {'measured':>22}  {'lecture 2^-d':>12}", file=out)
    for d, count in fractions:
        if count:
            measured = f"{count / samples:.3g} ({count:,})"
        else:
            measured = f"0 (< {3 / samples:.1g}, 95%)"  # the rule of three
        print(f"{d:>3}  {measured:>22}  {2.0 ** -d:>12.3g}", file=out)
    print("In d dimensions a critical point is a minimum only if the function curves up in every "
          "direction: rare already at d = 5, and far rarer than 2^-d says (the exact law falls "
          "like exp(-0.27 d^2)). Most critical points of a network's loss are saddles.",
          file=out)


# -- plots ------------------------------------------------------------------------------------

def plot_surface(surface, by_opt, tol, directory, plt):
    """One PNG: contour map with every trajectory, and the loss above the minimum vs steps."""
    from matplotlib.colors import LogNorm
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    x0, x1, y0, y1 = surface.extent
    xx, yy = np.meshgrid(np.linspace(x0, x1, 400), np.linspace(y0, y1, 400))
    zz = surface.f(xx, yy)
    fmin = min(surface.f(*m[1]) for m in surface.minima)
    if surface.log_levels:
        z = zz - fmin + 1e-3
        levels = np.logspace(np.log10(z.min()), np.log10(z.max()), 30)
        ax1.contourf(xx, yy, z, levels=levels, norm=LogNorm(), cmap="viridis", alpha=0.85)
    else:
        ax1.contourf(xx, yy, zz, levels=30, cmap="viridis", alpha=0.85)
    for i, (name, r) in enumerate(by_opt.items()):
        path = r["path"]
        inside = np.all(np.isfinite(path), axis=1)
        ax1.plot(path[inside, 0], path[inside, 1], "-", color=f"C{i}", lw=1.4,
                 label=f"{name} (lr {r['lr']:g})")
        ax1.plot(path[inside][-1:, 0], path[inside][-1:, 1], "o", color=f"C{i}", ms=5)
        gap = np.maximum(r["loss"] - fmin, 1e-16)
        ax2.semilogy(np.arange(gap.shape[0]), gap, color=f"C{i}", lw=1.2,
                     label=f"{name} (lr {r['lr']:g})")
    ax1.plot(*surface.start, "k*", ms=12, label="start")
    for label, (mx, my) in surface.minima:
        ax1.plot(mx, my, "rx", ms=9, mew=2)
    ax1.plot([], [], "rx", ms=9, mew=2, label="minima")
    ax1.set_xlim(x0, x1)
    ax1.set_ylim(y0, y1)
    ax1.set_xlabel("x")
    ax1.set_ylabel("y")
    ax1.set_title(f"f(x, y) = {surface.formula}", fontsize=9)
    ax1.legend(fontsize=7, loc="best")
    ax2.axhline(tol, color="0.5", ls="--", lw=0.8, label=f"tolerance {tol:g}")
    ax2.set_xlabel("step")
    ax2.set_ylabel("f - f(minimum)  (log scale)")
    ax2.set_title("loss above the minimum, per step", fontsize=9)
    ax2.legend(fontsize=7)
    fig.suptitle(f"{surface.name}: {surface.lesson}; start {surface.start}", fontsize=10)
    fig.tight_layout()
    path = os.path.join(directory, f"surface_{surface.name}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_goe(fractions, samples, directory, plt):
    fig, ax = plt.subplots(figsize=(6, 4))
    d = np.array([d for d, _ in fractions])
    frac = np.array([c / samples for _, c in fractions])
    shown = frac > 0
    ax.semilogy(d[shown], frac[shown], "o-", label=f"measured, {samples:,} GOE matrices per d")
    if not shown.all():
        ax.semilogy(d[~shown], np.full((~shown).sum(), 3 / samples), "v", color="C0",
                    label="none found: below this bound (95%)")
    ax.semilogy(d, 2.0 ** -d, "s--", color="C1", label="lecture's heuristic 2^-d")
    ax.set_xlabel("dimension d")
    ax.set_ylabel("fraction with every eigenvalue > 0")
    ax.set_xticks(d)
    ax.set_title("Critical points in d dimensions: minima are rare, saddles the rule",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(directory, "goe_minima.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- command line -----------------------------------------------------------------------------

def main(args, out=None, err=None):
    """Run ``python -m fastopt surfaces`` with parsed ``args``; return the exit status."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    plt = None
    if args.plot:  # fail before running, not after
        from .demo import require_matplotlib
        plt = require_matplotlib()
    registry = _registry.optimizers()
    names = args.functions or list(SURFACES)
    results = {}
    for name in names:
        surface = SURFACES[name]
        if not args.quiet:
            print(f"surfaces: {name} ...", file=err, flush=True)
        grid = LR_GRID if args.lr is None else (args.lr,)
        results[name] = {opt_name: best_run(surface, cls, args.steps, args.tol, grid)
                         for opt_name, cls in registry.items()}
    if args.lr is None:
        rates = (f"each at the learning rate of {LR_GRID[0]:g}..{LR_GRID[-1]:g} (half decades) "
                 f"that stays within {args.tol:g} of a minimum's value soonest")
    else:
        rates = f"all at learning rate {args.lr:g}"
    print(f"Every fastopt optimizer on 2-D test functions, {args.steps} steps: {rates}; other "
          f"hyperparameters at their class defaults. 'steps to tol': from that step on, "
          f"f - f(minimum) <= {args.tol:g}.", file=out)
    for name in names:
        s = SURFACES[name]
        print(f"  {name}: f = {s.formula}, start {s.start}: {s.lesson}", file=out)
    print(file=out)
    print_table(results, args.steps, args.tol, out)
    fractions = goe_fractions(range(1, args.max_dim + 1), args.samples, args.seed)
    print_goe(fractions, args.samples, out)
    if plt is not None:
        os.makedirs(args.plot, exist_ok=True)
        for name in names:
            print(f"wrote {plot_surface(SURFACES[name], results[name], args.tol, args.plot, plt)}",
                  file=out)
        print(f"wrote {plot_goe(fractions, args.samples, args.plot, plt)}", file=out)
    return 0


def add_parser(sub):
    """Add the ``surfaces`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "surfaces", help="every optimizer on saddles, plateaus, valleys and several minima",
        description="Run every fastopt optimizer on 2-D test functions (saddle, plateau, "
                    "Rosenbrock, Beale, Himmelblau) and print steps to the minimum, final point "
                    "and which minimum; then the fraction of random symmetric matrices (GOE) "
                    "of dimension 1..10 that are positive definite, the lecture's argument that "
                    "in high dimensions critical points are saddles.")
    # What the runs hold: 24 bytes per step (a point and a loss, float64) for every function
    # and optimizer's best run, and for two runs of the learning-rate search.
    runs = len(SURFACES) * len(_registry.optimizers()) + 2
    memory = _cli.physical_memory() or _cli.MAX_COUNT
    p.add_argument("--functions", nargs="+", type=_cli.one_of(SURFACES), choices=list(SURFACES),
                   metavar="NAME", help="only these functions, in any letter case (default: "
                                        "all of %(choices)s)")
    p.add_argument("--steps", type=_cli.array_items(24 * runs, f"the paths of {runs} runs"),
                   default=3000, metavar="N",
                   help="optimizer steps per run (default: 3000)")
    p.add_argument("--lr", type=_cli.positive_real,
                   help="one learning rate for every optimizer (default: each optimizer's best "
                        "of 1e-5..1, per function)")
    p.add_argument("--tol", type=_cli.positive_real, default=1e-4,
                   help="how close to the minimum's value counts as arrived (default: 1e-4)")
    p.add_argument("--samples", type=_cli.positive_int, default=100_000, metavar="N",
                   help="random matrices per dimension (default: 100000)")
    p.add_argument("--max-dim", default=10, metavar="D",
                   # A D x D float64 matrix, its symmetric sum and eigvalsh's work space.
                   type=_cli.at_most(math.isqrt(memory // 24),
                                     "three D x D float64 matrices must fit in memory"),
                   help="largest dimension of the random matrices (default: 10)")
    p.add_argument("--seed", type=_cli.seed, default=0,
                   help="seed of the random matrices (default: 0)")
    p.add_argument("--plot", metavar="DIR",
                   help="write DIR/surface_<name>.png (contours, trajectories, loss vs steps) "
                        "and DIR/goe_minima.png; needs matplotlib: pip install 'fastopt[plot]'")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p
