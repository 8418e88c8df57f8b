"""Conformance report: run someone's optimizer update through fastopt's golden cases.

:func:`check_update` takes an update function (yours, or one of the adapters
:func:`from_torch`, :func:`from_optax`, :func:`from_fastopt` of
``fastopt.testing._conform_adapters``), runs it through known-answer
cases (:mod:`fastopt.testing._cases`: every option set, odd lengths, misaligned starts, late
step counts, edge values), and returns a :class:`ConformanceReport`: per case, step and array
the largest and 99th-percentile ULP distance to ``fastopt.reference`` and the fraction of
bit-identical elements; the first divergence (step, index, the inputs there, expected, got); and
per edge-value class whether the behaviour matches (NaN where NaN, the sign of zero kept, no
spurious or missing inf, no subnormal flushed to zero).

The calling convention
----------------------
::

    fn(param, grad, state, *, t, lr, **hyper)  ->  None | new_param | (new_param, new_state)

``param``
    (n,) array of the case's dtype, writeable, starting where the case starts relative to a
    64-byte boundary; update it in place, or return the new parameter.
``grad``
    (n,) array, read-only.
``state``
    dict of the optimizer's state arrays under fastopt's names (Adam ``m``, ``v``, ``v_max``;
    Momentum ``velocity``; SGD and RMSProp ``momentum_buffer``; RMSProp ``sq_avg``,
    ``grad_avg``; Adagrad ``sum_sq``), (n,) and writeable. One dict per case, passed to every
    step of it: update its arrays in place or put new arrays under the same names. Keys of your
    own (e.g. a library's state object) stay from step to step. Delete a name (or set it to
    None) that your optimizer does not keep: it is then not compared.
``t``
    The step count of this step (1 on the first step of a run; late windows start at 10000).
``lr``
    The learning rate of this step (a Python float; schedules are evaluated for you).
``**hyper``
    fastopt's hyperparameters for the rule (``fastopt.reference.Adam``'s ``beta1``, ``beta2``,
    ``eps``, ``weight_decay``, ``amsgrad``, ``maximize``, ...), but only those your function's
    signature names (all of them if it takes ``**kwargs``). A case whose option your function
    does not name (e.g. ``amsgrad=True`` for a function without ``amsgrad``) is not run; the
    report lists it under "not run" with the reason.

The function runs on its own outputs from step to step, as in training, so differences
accumulate; ``forced=True`` restarts every step from the reference's values instead, so that
each step's distance is that step's own error.
"""
import dataclasses
import inspect
import math

import numpy as np

from ._cases import EDGE_CLASSES, RULES
from ._ulp import ulp_distance
from .. import _validation as _v

__all__ = ["check_update", "ConformanceReport", "CaseResult", "Divergence"]
_U64_MAX = np.iinfo(np.uint64).max
_ALIGN = 64  # bytes: an AVX-512 vector and a cache line, as the cases count offsets
_INT_OF = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


# -- the rules' keywords ---------------------------------------------------------------------

def rule_defaults(rule):
    """Every keyword of ``fastopt.reference.<rule>`` but ``params`` and ``lr``, with its
    default."""
    from .. import reference
    sig = inspect.signature(getattr(reference, rule))
    return {k: p.default for k, p in sig.parameters.items() if k not in ("params", "lr")}


def _accepted(fn):
    """The keywords ``fn`` takes besides its three positional arguments; None: any."""
    sig = _signature(fn)
    if sig is None or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {k for k, p in sig.parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"param", "grad", "state"}


def _signature(fn):
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: give them everything
        return None


def _same(a, b):
    """Hyperparameter equality: NaN equals NaN, and True is not 1."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _not_run_reason(case, accepted, fixed, defaults, who="the function"):
    """Why ``fn`` (called ``who``) cannot run ``case`` (None: it can)."""
    for key, value in case.hyper.items():
        if key in fixed:
            if not _same(fixed[key], value):
                return f"{who} is fixed at {key}={fixed[key]!r}; the case has {value!r}"
        elif accepted is not None and key not in accepted and not _same(value,
                                                                        defaults.get(key)):
            return f"{who} takes no {key!r} (the case has {key}={value!r})"
    return None


def options_label(rule, hyper):
    """The case's options that differ from the rule's defaults, e.g. ``"amsgrad=True"``."""
    defaults = rule_defaults(rule)
    parts = [f"{k}={v!r}" for k, v in hyper.items() if not _same(v, defaults.get(k))]
    return ", ".join(parts) or "defaults"


# -- arrays ----------------------------------------------------------------------------------

def _aligned_copy(x, offset):
    """A writeable copy of 1-D ``x`` starting ``offset`` elements after a 64-byte boundary."""
    n, item = x.shape[0], x.dtype.itemsize
    buf = np.empty(n + offset + _ALIGN // item, x.dtype)
    shift = (-buf.ctypes.data % _ALIGN) // item
    out = buf[shift + offset:shift + offset + n]
    out[...] = x
    return out


def _offset(x):
    return (x.ctypes.data % _ALIGN) // x.dtype.itemsize if x.size else 0


def identical(a, b):
    """Elementwise: the same bits, or both NaN (the payload may differ, as NumPy's and C's
    NaN propagation may)."""
    it = _INT_OF[a.dtype]
    return (a.view(it) == b.view(it)) | (np.isnan(a) & np.isnan(b))


def _p99(dist):
    """The 99th percentile of a uint64 array, an element of it (no interpolation)."""
    if dist.size == 0:
        return 0
    s = np.sort(dist, axis=None)
    return int(s[max(0, math.ceil(0.99 * s.size) - 1)])


def format_ulp(d):
    """A distance for a table: the number, or "NaN" when NaN faces a number."""
    d = int(d)
    if d == _U64_MAX:
        return "NaN"
    return f"{d}" if d < 10 ** 6 else f"{d:.1e}"


# -- results ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Divergence:
    """The first element where the function's result is not the reference's bits.

    Attributes
    ----------
    case : str
        The case's name.
    step : int
        Which step of the case, 1 for its first (the same as ``t`` for a run from the start).
    t : int
        The step count of that step.
    index : int
        The element: the lowest index that differs in any array at that step.
    arrays : tuple of str
        The arrays that differ there ("param", "m", ...).
    inputs : dict
        What the step was given at that element: ``param`` and each state array before the
        step (the function's own values from the step before, or the reference's with
        ``forced``), ``grad``, ``t`` and ``lr``.
    expected, got : dict
        Each compared array after the step at that element.
    ulp : dict
        The ULP distance of each compared array there.
    """

    case: str
    step: int
    t: int
    index: int
    arrays: tuple
    inputs: dict
    expected: dict
    got: dict
    ulp: dict

    def __str__(self):
        def show(x):
            return repr(x.item()) if isinstance(x, np.generic) else repr(x)
        ins = ", ".join(f"{k}={show(v)}" for k, v in self.inputs.items())
        lines = [f"first divergence: case {self.case}, step {self.step} (t={self.t}), "
                 f"index {self.index}, in {', '.join(self.arrays)}",
                 f"  inputs:   {ins}"]
        for name in self.expected:
            mark = "  <-" if name in self.arrays else ""
            lines.append(f"  {name:<9} expected {show(self.expected[name])}, got "
                         f"{show(self.got[name])} ({format_ulp(self.ulp[name])} ULP){mark}")
        return "\n".join(lines)


@dataclasses.dataclass
class EdgeResult:
    """How an edge-value class behaved: ``problems`` names each kind of mismatch found at its
    elements ("NaN missing", "spurious NaN", "spurious inf", "missing inf", "inf sign",
    "zero sign", "flushed to zero": ±0 where the reference has a nonzero subnormal), with the
    first (step, index) of each; empty when the behaviour matches.
    ``identical`` says whether every bit matched too (finite values may differ by ULPs and
    still match in behaviour)."""

    edge_class: str
    elements: int
    problems: dict
    identical: bool

    @property
    def matches(self):
        return not self.problems

    def __str__(self):
        if self.matches:
            return "ok" if self.identical else "ok (values differ)"
        return "; ".join(f"{k} at step {s}, index {i}" for k, (s, i) in self.problems.items())


class CaseResult:
    """One case run through the function.

    Attributes
    ----------
    case : Case
    ran : bool
        False when the case was not run (``reason`` says why).
    reason : str or None
    error : str or None
        The function raised or returned something unusable at step ``error_step``: the
        message; the steps before it are compared.
    arrays : tuple of str
        The arrays compared: "param" and each state array the function keeps.
    got : dict of str to ndarray
        Each array after each step the function took, (steps, n).
    ulp : dict of str to ndarray of uint64
        Distances to the reference, (steps, n).
    same : dict of str to ndarray of bool
        Bit-identical (or both NaN), (steps, n).
    """

    def __init__(self, case, reason=None):
        self.case, self.reason = case, reason
        self.ran = reason is None
        self.error = self.error_step = None
        self.arrays = ()
        self.got, self.ulp, self.same, self.inputs = {}, {}, {}, []

    # -- per step and array
    @property
    def steps_taken(self):
        return self.got["param"].shape[0] if "param" in self.got else 0

    def expected(self, name):
        exp = self.case.expected_param if name == "param" else self.case.expected_state[name]
        return exp[:self.steps_taken]

    def max_ulp(self, name):
        """(steps,) the largest distance of array ``name`` at each step."""
        d = self.ulp[name]
        return d.max(axis=1) if d.shape[1] else np.zeros(d.shape[0], np.uint64)

    def p99_ulp(self, name):
        """(steps,) the 99th-percentile distance of array ``name`` at each step."""
        return np.array([_p99(row) for row in self.ulp[name]], np.uint64)

    def fraction_identical(self, name):
        """(steps,) the fraction of bit-identical elements of array ``name`` at each step."""
        s = self.same[name]
        return s.mean(axis=1) if s.shape[1] else np.ones(s.shape[0])

    @property
    def bit_identical(self):
        return (self.ran and self.error is None
                and all(bool(self.same[n].all()) for n in self.arrays))

    @property
    def zero_sign_mismatches(self):
        """Elements (over every step and array) where both are zero with other signs: 0 ULP
        apart, so only this count (and the bit-identical fraction) shows them."""
        total = 0
        for n in self.arrays:
            g, e = self.got[n], self.expected(n)
            total += int(((g == 0) & (e == 0) & (np.signbit(g) != np.signbit(e))).sum())
        return total

    @property
    def first_divergence(self):
        """The first :class:`Divergence` (earliest step, then lowest index), or None."""
        if not self.ran:
            return None
        for i in range(self.steps_taken):
            bad = None
            for n in self.arrays:
                row = ~self.same[n][i]
                bad = row if bad is None else bad | row
            if bad is None or not bad.any():
                continue
            j = int(np.flatnonzero(bad)[0])
            arrays = tuple(n for n in self.arrays if not self.same[n][i, j])
            before = self.inputs[i]
            inputs = {k: (v[j] if isinstance(v, np.ndarray) else v) for k, v in before.items()}
            return Divergence(
                case=self.case.name, step=i + 1, t=int(before["t"]), index=j, arrays=arrays,
                inputs=inputs, expected={n: self.expected(n)[i, j] for n in self.arrays},
                got={n: self.got[n][i, j] for n in self.arrays},
                ulp={n: int(self.ulp[n][i, j]) for n in self.arrays})
        return None

    @property
    def edges(self):
        """Edge class -> :class:`EdgeResult`, for the classes the case carries."""
        out = {}
        for cls, idx in self.case.edges.items():
            idx = np.asarray(idx, np.int64)
            problems = {}
            same = True
            tiny = np.finfo(self.case.dtype).tiny  # the smallest normal number
            for n in self.arrays:
                g, e = self.got[n][:, idx], self.expected(n)[:, idx]
                same = same and bool(self.same[n][:, idx].all())
                gn, en = np.isnan(g), np.isnan(e)
                gi, ei = np.isinf(g), np.isinf(e)
                checks = {
                    "NaN missing": en & ~gn,
                    "spurious NaN": gn & ~en,
                    "spurious inf": gi & ~ei & ~en,
                    "missing inf": ei & ~gi & ~gn,
                    "inf sign": gi & ei & (np.signbit(g) != np.signbit(e)),
                    "zero sign": (g == 0) & (e == 0) & (np.signbit(g) != np.signbit(e)),
                    # flush-to-zero (-ffast-math, FTZ/DAZ): ±0 where the expectation is a
                    # nonzero subnormal; 1 ULP from the smallest subnormal, so only this
                    # check (not a distance limit) catches it
                    "flushed to zero": (g == 0) & (e != 0) & (np.abs(e) < tiny),
                }
                for kind, mask in checks.items():
                    if mask.any() and kind not in problems:
                        s, k = np.argwhere(mask)[0]
                        problems[kind] = (int(s) + 1, int(idx[k]))
            out[cls] = EdgeResult(cls, int(idx.size), problems, same)
        return out

    def __str__(self):
        head = f"case {self.case.name}"
        if not self.ran:
            return f"{head}: not run ({self.reason})"
        lines = [head + (" : bit-identical" if self.bit_identical else "")]
        if self.error is not None:
            lines.append(f"  stopped at step {self.error_step}: {self.error}")
        lines.append(f"  {'step':>5} {'t':>7}  {'array':<16} {'max ULP':>9} {'p99 ULP':>9} "
                     f"{'identical':>9}")
        for n in self.arrays:
            mx, p99, fr = self.max_ulp(n), self.p99_ulp(n), self.fraction_identical(n)
            for i in range(self.steps_taken):
                lines.append(f"  {i + 1:>5} {int(self.inputs[i]['t']):>7}  {n:<16} "
                             f"{format_ulp(mx[i]):>9} {format_ulp(p99[i]):>9} "
                             f"{fr[i]:>9.1%}")
        d = self.first_divergence
        if d is not None:
            lines.append(str(d))
        for cls, r in self.edges.items():
            lines.append(f"  edge {cls:<10} ({r.elements} elements): {r}")
        return "\n".join(lines)


class ConformanceReport:
    """What :func:`check_update` found. ``str(report)`` is a table (one row per option set and
    dtype) followed by the first divergence and the cases not run.

    Attributes
    ----------
    name : str
        The function's name.
    rule : str
    results : list of CaseResult
        One per case, in the catalogue's order (``report[case_name]`` finds one).
    """

    def __init__(self, name, rule, results, describe=None):
        self.name, self.rule, self.results = name, rule, list(results)
        self._describe = describe

    def __getitem__(self, case_name):
        for r in self.results:
            if r.case.name == case_name:
                return r
        raise KeyError(f"no case named {case_name!r} in this report")

    @property
    def run(self):
        """The results of the cases that ran."""
        return [r for r in self.results if r.ran]

    @property
    def not_run(self):
        """(case name, reason) of the cases not run."""
        return [(r.case.name, r.reason) for r in self.results if not r.ran]

    @property
    def bit_identical(self):
        """True when at least one case ran and every case run gave the reference's bits in
        every array at every step (NaN where NaN, the sign of every zero)."""
        ran = self.run
        return bool(ran) and all(r.bit_identical for r in ran)

    @property
    def max_ulp(self):
        """The largest distance over every case, step and array (0 if none ran)."""
        return max((int(r.ulp[n].max()) for r in self.run for n in r.arrays
                    if r.ulp[n].size), default=0)

    @property
    def verdict(self):
        """The headline: "bit-identical on every case run", "largest distance N ULP", or,
        when there is no distance to speak of, that no case ran or no step completed (a
        function that raised at step 1 of every case is not "0 ULP" away)."""
        if self.bit_identical:
            return "bit-identical on every case run"
        if not self.run:
            return "no case run"
        if not any(r.steps_taken for r in self.run):
            return "no step completed (every case run raised at step 1)"
        return f"largest distance {format_ulp(self.max_ulp)} ULP"

    @property
    def errors(self):
        return [(r.case.name, r.error_step, r.error) for r in self.run if r.error is not None]

    @property
    def first_divergence(self):
        """The first divergence of the first case (in order) that has one, or None."""
        for r in self.run:
            d = r.first_divergence
            if d is not None:
                return d
        return None

    def edge_summary(self):
        """Edge class -> (cases with it, cases whose behaviour matches, first problem text)."""
        out = {}
        for r in self.run:
            for cls, e in r.edges.items():
                n, ok, first = out.get(cls, (0, 0, None))
                if not e.matches and first is None:
                    first = f"{r.case.name}: {e}"
                out[cls] = (n + 1, ok + e.matches, first)
        return {c: out[c] for c in EDGE_CLASSES if c in out}

    def rows(self):
        """One dict per (options, dtype) group of cases run, in order: the table's data."""
        groups = {}
        for r in self.run:
            key = (options_label(self.rule, r.case.hyper), r.case.dtype.name)
            groups.setdefault(key, []).append(r)
        rows = []
        for (label, dtype), rs in groups.items():
            dists = [r.ulp[n].ravel() for r in rs for n in r.arrays]
            dist = np.concatenate(dists) if dists else np.zeros(0, np.uint64)
            same = np.concatenate([r.same[n].ravel() for r in rs for n in r.arrays]) \
                if dists else np.zeros(0, bool)
            first = next((r.first_divergence for r in rs if r.first_divergence is not None),
                         None)
            edge_bad = sorted({c for r in rs for c, e in r.edges.items() if not e.matches})
            edge_cases = [r for r in rs if r.edges]
            rows.append(dict(
                rule=self.rule,
                call=self._describe(rs[0].case.hyper) if self._describe else label,
                options=label, dtype=dtype, cases=len(rs),
                steps=sum(r.steps_taken for r in rs),
                arrays=", ".join(dict.fromkeys(n for r in rs for n in r.arrays)),
                max_ulp=int(dist.max()) if dist.size else 0, p99_ulp=_p99(dist),
                identical=float(same.mean()) if same.size else 1.0,
                zero_sign=sum(r.zero_sign_mismatches for r in rs),
                first=first, errors=sum(r.error is not None for r in rs),
                edges=("-" if not edge_cases else
                       "match" if not edge_bad else "differ: " + ", ".join(edge_bad))))
        return rows

    def table(self):
        """The rows as a fixed-width text table (:func:`format_rows`)."""
        return format_rows(self.rows())

    def __str__(self):
        ran, total = len(self.run), len(self.results)
        lines = [f"{self.name} against fastopt.reference.{self.rule}: {ran} of {total} cases "
                 f"run; {self.verdict}", self.table()]
        d = self.first_divergence
        if d is not None:
            lines.append(str(d))
        edges = self.edge_summary()
        if edges:
            lines.append("edge values (cases whose behaviour matches: NaN where NaN, no "
                         "spurious inf, the sign of zero, subnormals not flushed):")
            for cls, (n, ok, first) in edges.items():
                lines.append(f"  {cls:<10} {ok}/{n}" + (f"  first: {first}" if first else ""))
        for name, step, err in self.errors[:5]:
            lines.append(f"raised: {name} at step {step}: {err}")
        if self.not_run:
            reasons = {}
            for _, why in self.not_run:
                reasons[why] = reasons.get(why, 0) + 1
            lines.append(f"not run: {len(self.not_run)} cases")
            for why, n in reasons.items():
                lines.append(f"  {n:>4} x {why}")
        return "\n".join(lines)

    def assert_conforms(self, max_ulp=0):
        """Raise ``AssertionError`` (with the report) unless every case run is within
        ``max_ulp`` ULPs in every array, edge values behave as the reference's and nothing
        raised; ``max_ulp=0`` asks for the same bits, the sign of zero included."""
        max_ulp = _v.check_count(max_ulp, "max_ulp", 0, maximum=None)
        ok = bool(self.run) and not self.errors and all(
            e.matches for r in self.run for e in r.edges.values())
        ok = ok and (self.bit_identical if max_ulp == 0 else self.max_ulp <= max_ulp)
        if not ok:
            raise AssertionError(f"not within {max_ulp} ULP:\n{self}")


def format_rows(rows):
    """:meth:`ConformanceReport.rows` (of one report or several) as a fixed-width table."""
    cols = [("rule", "<"), ("call", "<"), ("dtype", "<"), ("cases", ">"), ("max ULP", ">"),
            ("p99 ULP", ">"), ("identical", ">"), ("±0", ">"), ("first divergence", "<"),
            ("edge values", "<")]
    body = []
    for row in rows:
        d = row["first"]
        first = "none" if d is None else (
            f"step {d.step} (t={d.t}) index {d.index} {'/'.join(d.arrays)}")
        if row["errors"]:
            first = f"{row['errors']} raised; " + first
        body.append([row["rule"], row["call"], row["dtype"], str(row["cases"]),
                     format_ulp(row["max_ulp"]), format_ulp(row["p99_ulp"]),
                     f"{row['identical']:.1%}", str(row["zero_sign"]), first, row["edges"]])
    widths = [max([len(c[0])] + [len(b[i]) for b in body]) for i, c in enumerate(cols)]

    def line(cells):
        return " | ".join(f"{c:{a}{w}}" for c, (_, a), w in zip(cells, cols, widths)).rstrip()
    return "\n".join([line([c[0] for c in cols]), "-+-".join("-" * w for w in widths)]
                     + [line(b) for b in body])


# -- running ---------------------------------------------------------------------------------

def _as_result_array(value, like, what):
    arr = np.asarray(value)
    if arr.dtype != like.dtype:
        raise TypeError(f"{what} is {arr.dtype}; expected {like.dtype}, the case's dtype")
    if arr.shape != like.shape:
        if arr.size == like.size:
            arr = arr.reshape(like.shape)
        else:
            raise ValueError(f"{what} has shape {arr.shape}; expected {like.shape}")
    return arr


def _run_case(fn, case, accepted, forced):
    res = CaseResult(case)
    n, k = case.param.shape[0], len(case.steps)
    offset = _offset(case.param)
    skipped = getattr(case, "skipped", None)
    if skipped is None:
        skipped = np.zeros(k, bool)
    hyper = {key: v for key, v in case.hyper.items() if accepted is None or key in accepted}
    param = _aligned_copy(case.param, offset)
    state = {name: _aligned_copy(arr, offset) for name, arr in case.state.items()}
    names = list(case.state)
    kept = set(names)
    got = {name: np.empty((k, n), case.dtype) for name in ["param"] + names}
    grad = np.empty(0)
    for i in range(k):
        if forced and i:
            param = _aligned_copy(case.expected_param[i - 1], offset)
            for name in kept:
                state[name] = _aligned_copy(case.expected_state[name][i - 1], offset)
        t = int(case.steps[i]) + int(skipped[i])  # a skipped step would have been the next
        lr = float(case.lr[i])
        res.inputs.append({"param": param.copy(), "grad": case.grads[i], "t": t, "lr": lr,
                           **{name: state[name].copy() for name in names if name in kept}})
        grad = _aligned_copy(case.grads[i], offset)
        grad.flags.writeable = False
        kwargs = dict(hyper)
        if accepted is None or "t" in accepted:
            kwargs["t"] = t
        if accepted is None or "lr" in accepted:
            kwargs["lr"] = lr
        try:
            # The edge cases overflow on purpose: the report counts the infs, NumPy's
            # warnings would only repeat them.
            with np.errstate(all="ignore"):
                out = fn(param, grad, state, **kwargs)
            if isinstance(out, tuple):
                if len(out) != 2:
                    raise ValueError(f"returned a tuple of {len(out)}; expected "
                                     f"(param, state)")
                out, new_state = out
                if new_state is not state:
                    for name in names:
                        state[name] = new_state.get(name) if hasattr(new_state, "get") \
                            else None
            if out is not None:
                param = _as_result_array(out, case.param, "the returned parameter")
            for name in names:
                if name in kept and state.get(name) is None:
                    kept.discard(name)  # the function does not keep it: not compared
                elif name in kept:
                    state[name] = _as_result_array(state[name], case.param,
                                                   f"state[{name!r}]")
        except Exception as exc:  # noqa: BLE001 - any failure of the user's code is reported
            res.error, res.error_step = f"{type(exc).__name__}: {exc}", i + 1
            res.inputs.pop()
            k = i
            break
        got["param"][i] = param
        for name in kept:
            got[name][i] = state[name]
    res.arrays = tuple(["param"] + [name for name in names if name in kept])
    for name in res.arrays:
        g = got[name][:k]
        e = (case.expected_param if name == "param" else case.expected_state[name])[:k]
        res.got[name] = g
        res.ulp[name] = ulp_distance(g, e)
        res.same[name] = identical(g, e)
    return res


def _default_cases(rule, dtypes, small, fixed, accepted, defaults):
    """The catalogue of ``rule`` (in ``dtypes``); when the function is fixed at
    hyperparameters none of its cases has, the catalogue's shapes built with them (tails, an
    offset, a late window, edge values)."""
    from . import _cases
    dts = [np.float32, np.float64] if dtypes is None else list(dtypes)
    catalogue = [c for dt in dts for c in _cases.cases(rule, dt, small=small)]
    if not fixed or any(_not_run_reason(c, accepted, fixed, defaults) is None
                        for c in catalogue):
        return catalogue
    options = {k: v for k, v in fixed.items() if not _same(v, defaults.get(k))}
    return [_cases.trajectory(rule, dt, **spec, **options)
            for dt in dts
            for spec in (dict(size=9, steps=3, offset=1), dict(size=17, steps=10),
                         dict(size=1000, steps=4, offset=3),
                         dict(size=17, steps=4, start_step=10_000),
                         dict(size=64, steps=5, offset=1, edges=True))]


def check_update(fn, rule=None, *, cases=None, dtypes=None, small=False, hyper=None,
                 forced=False, name=None):
    """Run ``fn`` through the golden cases of ``rule`` and report how far it is from
    ``fastopt.reference``, where, and how it treats edge values.

    Parameters
    ----------
    fn : callable
        ``fn(param, grad, state, *, t, lr, **hyper)``: the calling convention of this module
        (in place, or returning the new parameter, or ``(param, state)``). The adapters
        :func:`from_torch`, :func:`from_optax` and :func:`from_fastopt` make one from another
        library's optimizer.
    rule : str, optional
        "SGD", "Momentum", "RMSProp", "Adam", "AdamW" or "Adagrad" (any letter case): which of
        fastopt's rules ``fn`` claims to compute. Default: ``fn.rule`` (the adapters set it).
    cases : Case or list of Case, optional
        The cases to run (``fastopt.testing.trajectory(...)``, ``cases(...)``). Default: the
        catalogue of ``rule`` (:func:`fastopt.testing.cases`).
    dtypes : dtype or sequence of dtype, optional
        Only these dtypes (``"float32"``, ``[np.float32, np.float64]``) of the catalogue or of
        ``cases`` (default: float32 and float64).
    small : bool, default False
        The catalogue's quick subset (a few hundred steps in all per rule).
    hyper : dict, optional
        Hyperparameters ``fn`` is fixed at, in fastopt's names (``{"beta2": 0.99}``): only
        cases with these values run, and without ``cases`` the catalogue's shapes are built
        with them. Default: ``fn.fixed_hyper`` when the adapter set one, else none.
    forced : bool, default False
        Start every step from the reference's parameter and state (each step's own error)
        instead of the function's own results (differences accumulate, as in training).
    name : str, optional
        The function's name in the report (default: its qualified name).

    Returns
    -------
    ConformanceReport
        ``report.bit_identical``, ``report.max_ulp``, ``report.first_divergence``,
        ``report.results`` (per case, step and array), ``str(report)`` (a table),
        ``report.assert_conforms(max_ulp)``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastopt.testing import check_update, trajectory
    >>> def my_sgd(param, grad, state, *, t, lr):
    ...     param -= lr * grad
    >>> report = check_update(my_sgd, "SGD", cases=[trajectory("SGD", np.float32)])
    >>> report.bit_identical
    True
    """
    rule = _v.check_conform_rule(getattr(fn, "rule", None) if rule is None else rule, RULES)
    if not callable(fn):
        raise TypeError(f"fn must be a callable update function, got {type(fn).__name__}")
    fixed = dict(getattr(fn, "fixed_hyper", None) or {}) if hyper is None else dict(hyper)
    defaults = rule_defaults(rule)
    _v.check_conform_keywords(fixed, rule, defaults, "hyper" if hyper is not None else
                              f"{getattr(fn, '__name__', 'fn')}.fixed_hyper")
    from ._cases import DTYPES, Case
    if dtypes is not None:
        dtypes = _v.check_conform_dtypes(dtypes, DTYPES)
    if cases is not None:
        cases = _v.check_conform_cases(cases, Case)
    accepted = _accepted(fn)
    label = name or getattr(fn, "__qualname__", None) or repr(fn)
    if cases is None:
        cases = _default_cases(rule, dtypes, small, fixed, accepted, defaults)
    elif dtypes is not None:
        cases = [c for c in cases if c.dtype in dtypes]
    results = []
    for case in cases:
        if case.rule != rule:
            results.append(CaseResult(case, f"a case of {case.rule}, not {rule}"))
            continue
        why = _not_run_reason(case, accepted, fixed, defaults, label)
        results.append(CaseResult(case, why) if why else _run_case(fn, case, accepted, forced))
    return ConformanceReport(label, rule, results, getattr(fn, "describe", None))
