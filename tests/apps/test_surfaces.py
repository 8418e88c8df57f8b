"""``python -m fastopt surfaces``: the test functions, their gradients, the runs and the table,
the GOE fractions, and the plots."""
import importlib.util
import math

import numpy as np
import pytest

import fastopt
from fastopt._apps import registry as _registry, surfaces as _surfaces
from fastopt.__main__ import main

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
SURFACES = list(_surfaces.SURFACES.values())


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
def test_gradient_matches_finite_differences(surface):
    rng = np.random.default_rng(0)
    x0, x1, y0, y1 = surface.extent
    for x, y in [surface.start, *rng.uniform((x0, y0), (x1, y1), (5, 2))]:
        x, y = float(x), float(y)
        h = 1e-6 * max(1.0, abs(x), abs(y))
        gx, gy = surface.grad(x, y)
        nx = (surface.f(x + h, y) - surface.f(x - h, y)) / (2 * h)
        ny = (surface.f(x, y + h) - surface.f(x, y - h)) / (2 * h)
        scale = max(1.0, abs(gx), abs(gy))
        assert abs(gx - nx) < 1e-5 * scale and abs(gy - ny) < 1e-5 * scale


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
def test_minima_are_minima(surface):
    values = {surface.f(*point) for _, point in surface.minima}
    for _, (x, y) in surface.minima:
        assert max(abs(g) for g in surface.grad(x, y)) < 1e-4
        for dx, dy in [(1e-3, 0), (0, 1e-3), (-1e-3, 0), (0, -1e-3)]:
            assert surface.f(x + dx, y + dy) > surface.f(x, y)
    assert max(values) - min(values) < 1e-9  # the tolerance is about one value per function
    assert surface.f(*surface.start) > min(values)


def test_the_suggested_functions_and_starts():
    s = _surfaces.SURFACES
    assert s["saddle"].grad(0.0, 0.0) == (0.0, 0.0) and s["saddle"].start == (1.0, 1e-3)
    assert s["rosenbrock"].start == (-2.0, 2.0) and s["beale"].start == (3.0, 4.0)
    assert len(s["himmelblau"].minima) == 4
    x, y = s["plateau"].start
    assert math.hypot(*s["plateau"].grad(x, y)) < 0.01  # flat where it starts


def test_run_uses_the_fastopt_optimizer():
    path, loss = _surfaces.run(_surfaces.SURFACES["saddle"], fastopt.SGD, 0.1, 50)
    # By hand: x <- x - lr*2x, y <- y - lr*(-2y + y**3).
    x, y = 1.0, 1e-3
    for _ in range(50):
        x, y = x - 0.1 * (2 * x), y - 0.1 * (-2 * y + y ** 3)
    assert path.shape == (51, 2) and loss.shape == (51,)
    assert path[-1, 0] == x and path[-1, 1] == y


def test_a_divergent_rate_stops_early():
    path, loss = _surfaces.run(_surfaces.SURFACES["rosenbrock"], fastopt.SGD, 0.1, 500)
    assert path.shape[0] < 501 and not math.isfinite(loss[-1])
    assert _surfaces.outcome(_surfaces.SURFACES["rosenbrock"], path, loss, 1e-4) == (None, None)


def test_outcome_counts_the_step_from_which_it_stays_within_tol():
    s = _surfaces.SURFACES["plateau"]
    path = np.array([[3.0, 2.0], [0.0, 0.01], [0.0, 0.5], [0.0, 0.001], [0.0, 0.0]])
    loss = np.array([s.f(*p) for p in path])
    assert _surfaces.outcome(s, path, loss, 1e-3) == ("(0, 0)", 3)  # not 1: it left again
    assert _surfaces.outcome(s, path[:3], loss[:3], 1e-3) == (None, None)  # ends 0.5 away


def test_best_run_prefers_the_rate_that_arrives_soonest():
    s = _surfaces.SURFACES["saddle"]
    best = _surfaces.best_run(s, fastopt.SGD, 400, 1e-4, grid=(0.01, 0.1))
    assert best["lr"] == 0.1 and best["minimum"] == "(0, +sqrt 2)"
    slow = _surfaces.best_run(s, fastopt.SGD, 400, 1e-4, grid=(0.01,))
    assert slow["steps"] is None or slow["steps"] > best["steps"]


def test_goe_fractions():
    counts = dict(_surfaces.goe_fractions(range(1, 4), 20_000, seed=0))
    assert abs(counts[1] / 20_000 - 0.5) < 0.02
    assert abs(counts[2] / 20_000 - (2 - math.sqrt(2)) / 4) < 0.015  # exact for 2x2 GOE
    assert counts[3] < counts[2] < counts[1]


def test_cli_table_and_goe(capsys):
    assert main(["surfaces", "--functions", "saddle", "himmelblau", "--steps", "300",
                 "--samples", "3000", "--max-dim", "6", "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("function"))
    for word in ("optimizer", "lr", "steps to tol", "final point", "minimum", "final loss"):
        assert word in lines[header]
    rows = lines[header + 1:header + 1 + 2 * len(_registry.optimizers())]
    assert [r.split()[0] for r in rows[::len(_registry.optimizers())]] == ["saddle",
                                                                           "himmelblau"]
    named = [r.split()[1] if r.split()[0] in ("saddle", "himmelblau") else r.split()[0]
             for r in rows]
    assert named == list(_registry.optimizers()) * 2
    assert "(0, +sqrt 2)" in out or "(0, -sqrt 2)" in out
    assert "Random symmetric matrices (GOE), 3,000 per dimension" in out
    goe = lines[lines.index(next(l for l in lines if l.strip().startswith("d "))) + 1:][:6]
    assert [int(l.split()[0]) for l in goe] == [1, 2, 3, 4, 5, 6]
    assert "< 0.001, 95%" in goe[-1]  # none of 3000 6x6 matrices: the rule of three


def test_cli_one_rate_for_all(capsys):
    assert main(["surfaces", "--functions", "plateau", "--steps", "400", "--lr", "0.01",
                 "--samples", "100", "--max-dim", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "all at learning rate 0.01" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("function"))
    rows = {}
    for line in lines[header + 1:header + 1 + len(_registry.optimizers())]:
        words = line.split()
        rows[words[1] if words[0] == "plateau" else words[0]] = line
    # The lecture's point: on the plateau plain gradient descent crawls, Adam gets through.
    assert "not within 400" in rows["sgd"]
    assert "(0, 0)" in rows["adam"]


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
def test_cli_plots(tmp_path, capsys):
    assert main(["surfaces", "--functions", "saddle", "beale", "--steps", "100", "--samples",
                 "500", "--max-dim", "3", "--plot", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    for name in ["saddle", "beale", "goe_minima"]:
        png = tmp_path / (name + ".png" if name == "goe_minima" else f"surface_{name}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {png}" in out


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "must be at least 1"),
    (["--tol", "-1"], "must be finite and > 0"),
    (["--seed", "-1"], "must be >= 0"),
    (["--functions", "ackley"], "invalid choice"),
])
def test_cli_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["surfaces", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
