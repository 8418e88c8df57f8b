"""The training loops of ``python -m fastopt train``, one per implementation, with their phase
timing and the comparison table: fastopt's packed optimizer (:class:`FastoptLoop`), the course's
loop (:class:`CourseLoop`), ``torch.nn`` with torch.optim (:class:`TorchLoop`) or with
:mod:`fastopt.torch` (:class:`FastoptTorchLoop`).

The command line is :mod:`fastopt._apps.train`; the data-parallel loop
(:mod:`fastopt._apps.train_distributed`) builds on :class:`FastoptLoop` here. Neither is imported
by this module, so the two import it without a cycle.
"""
import math
import os
import sys
import time

import numpy as np

import fastopt
from fastopt import _half

from . import course as _course, mlp as _mlp
from .registry import TORCH  # fastopt class name -> torch.optim class, keywords, flags

DEFAULT_LAYERS = (784, 256, 256, 10)
DEFAULT_HIDDEN = DEFAULT_LAYERS[1:-1]
PHASES = ("batches", "forward+backward", "optimizer step")
# Threads, default 1. With batches of 64 the matrix products are small (256 x 784 by 784 x 64)
# and BLAS threads hardly pay: on the 2-core machine this was written on, while other processes
# ran, 2 OpenBLAS threads made one batch's forward and backward 14.5 ms against 1.2 ms on one.
DEFAULT_THREADS = 1


def batch_rng(seed):
    """The generator both loops draw their per-epoch permutations from (one seed, one stream
    of its own; see :mod:`fastopt._apps.course` for why both loops get the same batches)."""
    return np.random.default_rng([seed, 0xBA7C])


def add_phases(phases, t0, t1, t2, t3):
    """Add one batch's clock readings to ``phases``: drawing the batch (t0..t1), forward and
    backward (t1..t2), the optimizer step (t2..t3). Shared by the single-process and the
    data-parallel loops, so that their tables time the same things."""
    phases["batches"] += t1 - t0
    phases["forward+backward"] += t2 - t1
    phases["optimizer step"] += t3 - t2


class Progress:
    """Progress on stderr, for ``python -m fastopt train`` (:meth:`batch`, :meth:`clear`) and
    ``python -m fastopt``'s demo (:meth:`epoch`, :meth:`done`): a rewritten line on a terminal,
    otherwise a line per epoch (train) or per 1000 epochs (the demo)."""

    def __init__(self, stream=None, enabled=True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def batch(self, label, epoch, epochs, k, n):
        """Batch ``k`` of ``n`` of epoch ``epoch`` of ``epochs`` (all counted from 1)."""
        if not self.enabled:
            return
        if self.tty:
            if k % 25 == 0 or k == n:
                self.stream.write(f"\r{label}: epoch {epoch}/{epochs}, batch {k}/{n}   ")
                self.stream.flush()
        elif k == 1:
            self.stream.write(f"{label}: epoch {epoch}/{epochs} ({n} batches)\n")
            self.stream.flush()

    def clear(self):
        """Blank the rewritten line (a terminal only)."""
        if self.tty:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()

    def epoch(self, label, epoch, num_epochs):
        """Epoch ``epoch`` (counted from 0) of ``num_epochs``, for runs of thousands of tiny
        epochs (the demo's)."""
        if not self.enabled:
            return
        if self.tty and (epoch % 100 == 0 or epoch == num_epochs - 1):
            self.stream.write(f"\r{label}: epoch {epoch + 1}/{num_epochs}   ")
            self.stream.flush()
        elif not self.tty and epoch % 1000 == 0:
            self.stream.write(f"{label}: epoch {epoch}/{num_epochs}\n")

    def done(self, label, seconds):
        """A run finished after ``seconds``."""
        if not self.enabled:
            return
        self.stream.write(f"{chr(13) if self.tty else ''}{label}: done in {seconds:.2f} s"
                          f"{' ' * 10 if self.tty else ''}\n")
        self.stream.flush()


class Run:
    """What one training run produced.

    Attributes
    ----------
    name : str
        "fastopt", "course", "torch" or "torch + fastopt.torch".
    params : dict of str to ndarray
        Final parameters ``W1, b1, ...``.
    epochs : list of dict
        Per epoch: ``loss``, ``train_acc``, ``test_acc``, ``seconds`` and ``phases`` (seconds
        per phase of :data:`PHASES`).
    batch_losses : ndarray
        Mean loss of every batch, in order.
    """

    def __init__(self, name):
        self.name = name
        self.params = None
        self.epochs = []
        self.batch_losses = np.empty(0)

    def mean(self, key):
        """Mean over the epochs of ``seconds`` or of a phase."""
        if key == "seconds":
            return sum(e["seconds"] for e in self.epochs) / len(self.epochs)
        return sum(e["phases"][key] for e in self.epochs) / len(self.epochs)


class _Loop:
    """A training loop: :meth:`epoch` trains one epoch and returns its figures; :meth:`run`
    trains several, evaluates and prints a line after each.

    The epoch, its clock readings and its bookkeeping are written once, in :meth:`epoch`; an
    implementation gives what varies: :meth:`batches` (the epoch's batches),
    :meth:`forward_backward` (one batch's loss and gradients), :meth:`step` (the optimizer
    step), :meth:`parameters`, and :meth:`figures` when its epoch's figures are not its own
    batches' (the data-parallel loop's are every rank's).
    """

    name = None
    m = None        # training examples
    n_batches = None  # batches per epoch

    def batches(self):
        """An iterator over the epoch's batches. Work it does before yielding a batch (a
        shuffle, the epoch's gather) is timed as that batch's phase "batches"."""
        raise NotImplementedError

    def forward_backward(self, batch):
        """Forward and backward pass of one batch: the gradients go where :meth:`step` reads
        them.

        Returns
        -------
        loss_sum, correct, size
            The loss summed over the batch and the count of examples classified right (each
            a number, or a 0-d tensor converted after the step), and the batch's examples.
        """
        raise NotImplementedError

    def step(self):
        """The optimizer step on the gradients of the last :meth:`forward_backward`."""
        raise NotImplementedError

    def parameters(self):
        """The current parameters as a dict ``W1, b1, ...`` of NumPy arrays (not copies)."""
        raise NotImplementedError

    def figures(self, sums, sizes, loss_total, correct, seconds, phases):
        """The dict :meth:`epoch` returns, from the epoch's per-batch loss sums and sizes, the
        loss total (added batch by batch in a Python float), the correct count, the seconds and
        the phases."""
        return dict(loss=loss_total / self.m, train_acc=correct / self.m, seconds=seconds,
                    phases=phases, losses=sums / sizes)

    def epoch(self, progress=None, epoch=1, n_epochs=1):
        """Train one epoch.

        Returns
        -------
        dict
            ``loss`` (mean over the examples), ``train_acc`` (running), ``seconds`` (the whole
            epoch), ``phases`` (seconds per phase) and ``losses`` (each batch's mean loss).
        """
        clock, n = time.perf_counter, self.n_batches
        phases = dict.fromkeys(PHASES, 0.0)
        sums, sizes = np.empty(n), np.empty(n)
        loss_total, correct = 0.0, 0
        start = clock()
        batches = self.batches()
        for k in range(n):
            t0 = clock()
            batch = next(batches)
            t1 = clock()
            loss_sum, right, size = self.forward_backward(batch)
            t2 = clock()
            self.step()
            t3 = clock()
            add_phases(phases, t0, t1, t2, t3)
            loss_sum = float(loss_sum)
            loss_total += loss_sum
            correct += int(right)
            sums[k], sizes[k] = loss_sum, size
            if progress is not None:
                progress.batch(self.name, epoch, n_epochs, k + 1, n)
        return self.figures(sums, sizes, loss_total, correct, clock() - start, phases)

    def run(self, n_epochs, out, progress):
        """Train ``n_epochs`` epochs; print one line per epoch to ``out``; return a :class:`Run`."""
        run = Run(self.name)
        losses = []
        X_test, y_test = self.test
        for k in range(1, n_epochs + 1):
            e = self.epoch(progress, k, n_epochs)
            if progress is not None:
                progress.clear()
            losses.append(e.pop("losses"))
            e["test_acc"] = _mlp.accuracy(self.parameters(), X_test, y_test)
            run.epochs.append(e)
            print(f"{self.name:<8} epoch {k}/{n_epochs}  loss {e['loss']:.4f}  train acc "
                  f"{e['train_acc']:.4f}  test acc {e['test_acc']:.4f}  {e['seconds']:.2f} s",
                  file=out, flush=True)
        run.batch_losses = np.concatenate(losses)
        run.params = {k: np.array(v, copy=True) for k, v in self.parameters().items()}
        return run


def train_batches(X, y, batch_size, seed, rank=0, world=1):
    """The batches of ``train``: a :class:`fastopt.MiniBatches` over ``X`` (one example per
    column) and ``y``, its permutations from :func:`batch_rng` of ``seed``; with ``rank`` and
    ``world``, part ``rank`` of each of those batches (``--distributed``; at ``world`` 1 the
    batches themselves)."""
    return fastopt.MiniBatches(X, y, batch_size=batch_size, seed=batch_rng(seed), axis=1,
                               rank=rank, world=world)


class FastoptLoop(_Loop):
    """Packed parameters, one fastopt step per batch, batches from :func:`train_batches`.

    Parameters
    ----------
    params0 : dict
        Initial parameters (copied).
    data : tuple
        ``(X, y, X_test, y_test)`` as from :mod:`fastopt._apps.datasets`.
    cls : type
        The fastopt optimizer class, built by :meth:`make_optimizer` (``cls(params, lr=lr)``).
    lr : float
    batch_size, seed : int
    """

    name = "fastopt"
    rank, world = 0, 1  # the part of every batch this loop trains on (train_distributed's)

    def __init__(self, params0, data, cls, lr, batch_size, seed):
        X, y, X_test, y_test = data
        self.m, self.test = X.shape[1], (X_test, y_test)
        self.net = _mlp.Network(params0)
        self.opt = self.make_optimizer(cls, self.net.params, lr)
        self.loader = train_batches(X, y, batch_size, seed, self.rank, self.world)
        self.n_batches = len(self.loader)

    def make_optimizer(self, cls, params, lr):
        """The optimizer over the packed ``params``."""
        return cls(params, lr=lr)

    def parameters(self):
        return self.net.params

    def batches(self):
        return iter(self.loader)  # the epoch's gather runs in the first next()

    def forward_backward(self, batch):
        xb, yb = batch
        loss_sum, right = self.net.forward_backward(xb, yb)
        return loss_sum, right, xb.shape[1]

    def step(self):
        self.opt.step(self.net.grads)


class CourseLoop(_Loop):
    """The same training with the course's loop (:mod:`fastopt._apps.course`): dictionaries,
    an array per operation, ``random_mini_batches`` every epoch.

    Parameters
    ----------
    params0, data, batch_size, seed
        As :class:`FastoptLoop`.
    cls : type
        The fastopt optimizer class whose update the course's form replays.
    hyperparameters : dict
        The fastopt optimizer's ``hyperparameters`` (``lr`` a float).
    """

    name = "course"

    def __init__(self, params0, data, cls, hyperparameters, batch_size, seed):
        X, y, X_test, y_test = data
        self.X, self.test, self.batch_size = X, (X_test, y_test), batch_size
        self.m = X.shape[1]
        self.n_batches = math.ceil(self.m / batch_size)  # random_mini_batches' count
        self.Y = _course.one_hot(y, params0[f"W{len(params0) // 2}"].shape[0])
        self.params = {k: v.copy() for k, v in params0.items()}
        self.updater = _course.CourseUpdater(cls, hyperparameters, self.params)
        self.description = self.updater.description
        self.rng = batch_rng(seed)
        self.grads = None

    def parameters(self):
        return self.params

    def batches(self):
        minibatches = _course.random_mini_batches(self.X, self.Y, self.batch_size, self.rng)
        # The course slices one shuffled copy: each X batch is a strided view (rows m apart).
        # BLAS may round a product of a strided operand differently from the same values laid
        # out contiguously (on AVX-512 OpenBLAS, 179 of 320 values of dW1 differed by up to
        # 2.2e-8), so the comparison hands BLAS the layout fastopt's MiniBatches hands it: a
        # C-contiguous (n_x, bk) array per batch (docs/contract.md §1). The copies are counted
        # in this loop's batch time (all of them in the first batch's, as fastopt's gather).
        yield from [(np.ascontiguousarray(bx), by) for bx, by in minibatches]

    def forward_backward(self, batch):
        minibatch_X, minibatch_Y = batch
        AL, caches = _course.forward_propagation(minibatch_X, self.params)
        cost = _course.compute_cost(AL, minibatch_Y)
        right = int(np.count_nonzero(np.argmax(AL, axis=0) == np.argmax(minibatch_Y, axis=0)))
        self.grads = _course.backward_propagation(AL, minibatch_Y, caches)
        return cost, right, minibatch_X.shape[1]

    def step(self):
        self.updater.step(self.params, self.grads)


# -- 16-bit weights (--dtype bfloat16 / float16, issue 24) -------------------------------------


def half_dtype(kind):
    """The NumPy dtype of ``kind``'s arrays: ``np.float16``; for bfloat16,
    ``ml_dtypes.bfloat16`` when ml_dtypes is installed, else ``uint16`` holding the bits (both
    are what fastopt's optimizers take, docs/contract.md §14)."""
    if kind == _half.F16:
        return np.dtype(np.float16)
    try:
        import ml_dtypes
    except ImportError:
        return np.dtype(np.uint16)
    return np.dtype(ml_dtypes.bfloat16)


def rounded(params, kind):
    """``params`` (float32) rounded to ``kind`` and widened back: float32 values that the
    16-bit format holds exactly, so that the float32 run and the 16-bit runs of ``--dtype``
    start from the same weights."""
    return {k: _half.widen(_half.narrow(v, kind), kind).reshape(v.shape)
            for k, v in params.items()}


class _HalfLoop(FastoptLoop):
    """:class:`FastoptLoop` with weights stored in 16 bits (``kind``: "bfloat16" or
    "float16"): the forward and backward passes are float32 on the weights widened exactly
    (the float32 :class:`fastopt._apps.mlp.Network`), and the float32 gradients are rounded to
    16 bits (:func:`fastopt._half.narrow`, nearest even) in :attr:`grads16`; both conversions
    count in the forward+backward phase. What the 16-bit gradients step is the subclass's."""

    def __init__(self, params0, data, cls, lr, batch_size, seed, kind):
        self.kind, dtype = kind, half_dtype(kind)
        self.params16 = {k: _half.narrow(v, kind).view(dtype) for k, v in params0.items()}
        self.grads16 = {k: np.zeros_like(v) for k, v in self.params16.items()}
        super().__init__(params0, data, cls, lr, batch_size, seed)

    def widen_params(self):
        """Write the 16-bit weights, widened (exact), into the float32 network."""
        for k, v in self.params16.items():
            np.copyto(self.net.params[k], _half.widen(_half.bits(v), self.kind).reshape(v.shape))

    def parameters(self):
        self.widen_params()
        return self.net.params

    def forward_backward(self, batch):
        self.widen_params()
        result = super().forward_backward(batch)
        for k, g in self.grads16.items():
            _half.narrow(self.net.grads[k], self.kind, out=_half.bits(g))
        return result


class MasterLoop(_HalfLoop):
    """16-bit weights stepped by fastopt with float32 master weights and float32 state:
    ``cls(params16, lr=lr, master_dtype=np.float32)`` steps the 16-bit gradients and rewrites
    the 16-bit weights as its masters rounded (docs/contract.md §14)."""

    name = "master"

    def make_optimizer(self, cls, params, lr):
        return cls(self.params16, lr=lr, master_dtype=np.float32)

    def step(self):
        self.opt.step(self.grads16)


def pure_state(opt, kind):
    """The 16-bit copies (``uint16`` bits) of ``opt``'s state, for :func:`pure_step`: a dict
    state name -> dict key -> array, each ``opt``'s state rounded (zeros, or Adagrad's
    initial accumulator)."""
    return {s: {k: _half.narrow(v, kind) for k, v in opt.state(s).items()}
            for s in opt.state_names}


def pure_step(opt, state16, params16, grads16, params32, grads32, kind):
    """One "pure" 16-bit step, no master: the weights ``params16`` and the state ``state16``
    (:func:`pure_state`) are stored in 16 bits. They and the gradients ``grads16`` are widened
    to float32 (exact) into ``params32``, ``opt``'s state and ``grads32``; ``opt`` (over
    ``params32``) takes its float32 step; the weights and the state are rounded back to 16
    bits (nearest even). An update smaller than half the spacing of the 16-bit numbers around
    a weight is lost.

    This is what torch's fused CPU Adam does for bfloat16 parameters (it loads the bf16
    parameter, gradient and state, computes in float32 and stores bf16). Compared with
    ``torch.optim.Adam(fused=True)`` (torch 2.13) on bfloat16 tensors, a 256 x 784 weight of
    std 0.05 and 10 gradients of std 1e-3, lr 1e-4 (tests/apps/test_train.py): the same
    89,070 of 200,704 weights moved; 34 ended different, 33 by one bfloat16 ulp and one by 3;
    the second moment differed in 16 values by one ulp, the first moment in 3,342 (by at most
    3.8e-6 against a mean magnitude of 1.7e-4: torch forms it its own way). No bit claim.
    """
    widen, narrow, bits = _half.widen, _half.narrow, _half.bits
    for k, p in params16.items():
        np.copyto(params32[k], widen(bits(p), kind).reshape(p.shape))
    for k, g in grads16.items():
        np.copyto(grads32[k], widen(bits(g), kind).reshape(g.shape))
    for s, arrays in state16.items():
        for k, v in opt.state(s).items():
            np.copyto(v, widen(arrays[k], kind).reshape(v.shape))
    opt.step(grads32)
    for k, p in params16.items():
        narrow(params32[k], kind, out=bits(p))
    for s, arrays in state16.items():
        for k, v in opt.state(s).items():
            narrow(v, kind, out=arrays[k])


class PureLoop(_HalfLoop):
    """"Pure" 16-bit training, no master: weights **and** optimizer state stored in 16 bits,
    each step ``cls``'s float32 step (fastopt's float32 kernels, which write the reference's
    bits) on their widened copies, rounded back (:func:`pure_step`)."""

    name = "pure"

    def make_optimizer(self, cls, params, lr):
        opt = cls(params, lr=lr)  # over the float32 network: the widened copies
        self.state16 = pure_state(opt, self.kind)
        return opt

    def step(self):
        pure_step(self.opt, self.state16, self.params16, self.grads16, self.net.params,
                  self.net.grads, self.kind)


def torch_optimizer_name(cls, module="torch.optim"):
    """``torch.optim.X(...)`` (or ``fastopt.torch.X``) as shown in the output, or None without
    a counterpart."""
    entry = TORCH.get(cls.__name__)
    if entry is None:
        return None
    if module != "torch.optim":
        return f"{module}.{entry[0]}"
    flags = ", ".join(f"{k}=True" for k in entry[2])
    return f"torch.optim.{entry[0]}({flags})"


class TorchLoop(_Loop):
    """The same network, initial weights and batches in ``torch.nn``, with a fused torch.optim
    step. Not bit-identical: torch's matrix products and update forms are its own. Threads:
    ``torch.set_num_threads`` is the caller's (process-wide) setting."""

    name = "torch"

    def __init__(self, params0, data, cls, hyperparameters, batch_size, seed):
        import torch
        self.torch = torch
        X, y, X_test, y_test = data
        self.test, self.batch_size, self.m = (X_test, y_test), batch_size, X.shape[1]
        self.n_batches = math.ceil(self.m / batch_size)
        L = len(params0) // 2
        modules = []
        for l in range(1, L + 1):
            W = params0[f"W{l}"]
            layer = torch.nn.Linear(W.shape[1], W.shape[0],
                                    dtype=torch.from_numpy(W).dtype)  # --dtype float64 too
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(W))
                layer.bias.copy_(torch.from_numpy(params0[f"b{l}"][:, 0]))
            modules += [layer, torch.nn.ReLU()] if l < L else [layer]
        self.model = torch.nn.Sequential(*modules)
        name, kwargs, flags = TORCH[cls.__name__]
        self.opt = self.make_optimizer(name, list(self.model.parameters()),
                                       kwargs(hyperparameters), flags)
        self.loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
        self.X_rows = torch.from_numpy(np.ascontiguousarray(X.T))  # one example per row
        self.y = torch.from_numpy(y)
        self.rng = batch_rng(seed)

    def make_optimizer(self, name, params, kwargs, flags):
        """torch.optim's class ``name`` over ``params``, on its fastest path (``flags``)."""
        return getattr(self.torch.optim, name)(params, **kwargs, **flags)

    def parameters(self):
        params = {}
        for l, layer in enumerate(self.model[::2], 1):
            params[f"W{l}"] = layer.weight.detach().numpy()
            params[f"b{l}"] = layer.bias.detach().numpy()[:, None]
        return params

    def batches(self):
        bs, m = self.batch_size, self.m
        perm = self.torch.from_numpy(self.rng.permutation(m))
        for k in range(self.n_batches):
            idx = perm[k * bs:(k + 1) * bs]
            yield self.X_rows[idx], self.y[idx]

    def forward_backward(self, batch):
        xb, yb = batch
        self.opt.zero_grad(set_to_none=False)
        logits = self.model(xb)
        loss_sum = self.loss_fn(logits, yb)
        (loss_sum / xb.shape[0]).backward()
        # Tensors: the skeleton reads them (.item()) after the step, as a float and an int.
        return loss_sum.detach(), (logits.argmax(dim=1) == yb).sum(), xb.shape[0]

    def step(self):
        self.opt.step()


class FastoptTorchLoop(TorchLoop):
    """:class:`TorchLoop` with :mod:`fastopt.torch`'s optimizer of the same name and
    hyperparameters: torch.nn's forward and backward, fastopt's packed step (the parameters
    and gradients become views of one buffer each, a step is one kernel call).
    ``zero_grad(set_to_none=False)`` keeps those gradient views."""

    name = "torch + fastopt.torch"

    def make_optimizer(self, name, params, kwargs, flags):
        import fastopt.torch
        return getattr(fastopt.torch, name)(params, **kwargs)


def differing(a, b):
    """Names (with counts) of the arrays of two parameter dicts whose bits differ."""
    bad = []
    for k in a:
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape:
            bad.append(f"{k} (dtype/shape)")
        elif x.tobytes() != y.tobytes():
            n = int(np.count_nonzero(x.view(f"u{x.itemsize}") != y.view(f"u{y.itemsize}")))
            bad.append(f"{k} ({n} of {x.size} values)")
    return bad


def print_comparison(fast, others, descriptions, out):
    """The per-phase table: seconds per epoch (mean over the epochs), speed-ups, bit check.

    Returns
    -------
    bool
        True when every bit-identical comparison held.
    """
    cols = list(PHASES) + ["total"]

    def cells(run):
        values = [run.mean(p) for p in PHASES] + [run.mean("seconds")]
        return [f"{v:.3f}" for v in values]

    rows = [("fastopt", cells(fast))]
    for run in others:
        rows.append((run.name, cells(run)))
        ratios = [run.mean(p) / fast.mean(p) if fast.mean(p) > 0 else math.inf
                  for p in PHASES] + [run.mean("seconds") / fast.mean("seconds")]
        rows.append((f"  speed-up over {run.name}", [f"{r:.2f}x" for r in ratios]))
    n_epochs = len(fast.epochs)
    header = f"s per epoch, mean of {n_epochs}"
    width = max(len(header), *(len(label) for label, _ in rows))
    widths = [max(len(c), 7) for c in cols]
    print(file=out)
    print(f"{header:<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cols, widths)),
          file=out)
    for label, values in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(values, widths)),
              file=out)
    for run in [fast] + list(others):
        print(f"{run.name}: {descriptions[run.name]}", file=out)
    share = fast.mean("optimizer step") / fast.mean("seconds")
    print(f"fastopt's optimizer step: {share:.1%} of its epoch. The total also counts the "
          f"loss and accuracy bookkeeping; test accuracy is evaluated outside the timed epoch.",
          file=out)
    ok = True
    runs = {run.name: run for run in others}
    if "torch" in runs and FastoptTorchLoop.name in runs:
        mine, theirs = runs[FastoptTorchLoop.name], runs["torch"]
        print(f"{FastoptTorchLoop.name}: its optimizer step "
              f"{theirs.mean('optimizer step') / mine.mean('optimizer step'):.2f}x as fast as "
              f"torch's, its epoch {theirs.mean('seconds') / mine.mean('seconds'):.2f}x.",
              file=out)
    for run in others:
        if run.name == "torch":
            print("torch: not bit-identical, and not meant to be (its own matrix products and "
                  "update forms); final test accuracy "
                  f"{run.epochs[-1]['test_acc']:.4f} against fastopt's "
                  f"{fast.epochs[-1]['test_acc']:.4f}.", file=out)
            continue
        if run.name == FastoptTorchLoop.name:
            print(f"{run.name}: fastopt's update arithmetic on torch.nn's gradients, which are "
                  f"not fastopt's (torch's matrix products); final test accuracy "
                  f"{run.epochs[-1]['test_acc']:.4f}.", file=out)
            continue
        bad = differing(fast.params, run.params)
        n_values = sum(a.size for a in fast.params.values())
        if bad:
            ok = False
            print(f"final parameters: NOT bit-identical to the {run.name} loop: "
                  f"{', '.join(bad)}. Please report this.", file=out)
        else:
            same_losses = fast.batch_losses.tobytes() == run.batch_losses.tobytes()
            print(f"final parameters: bit-identical to the {run.name} loop ({n_values:,} "
                  f"{fast.params['W1'].dtype} values in {len(fast.params)} arrays; every "
                  f"batch's loss "
                  f"{'identical too' if same_losses else 'differs'}).", file=out)
    return ok


def plot(run, directory, plt, title, labels=None):
    """Write ``train.png``: per-batch loss (raw and :func:`fastopt.ewa`-smoothed) and the
    accuracy per epoch. Returns the path.

    ``run`` is a :class:`Run`, or a list of them (``--dtype bfloat16``'s three): then each
    gets its smoothed loss curve over its faint raw one and its test accuracy, in a colour of
    its own, labelled by ``labels[run.name]`` (default: the name)."""
    os.makedirs(directory, exist_ok=True)
    runs = run if isinstance(run, (list, tuple)) else [run]
    labels = labels or {}
    many = len(runs) > 1
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, r in enumerate(runs):
        n_epochs, losses = len(r.epochs), r.batch_losses
        x = np.arange(1, losses.shape[0] + 1) / (losses.shape[0] / n_epochs)
        color, label = f"C{i}", labels.get(r.name, r.name)
        ax1.plot(x, losses, color=color if many else "0.75", lw=0.5,
                 alpha=0.25 if many else 1.0, label=None if many else "loss of each batch")
        # Several runs: the first drawn wider and the second dashed, so that two runs that
        # coincide (float32 and the master weights) both stay visible.
        style = dict(lw=2.5 if many and i == 0 else 1.5, ls="--" if many and i == 1 else "-")
        ax1.plot(x, fastopt.ewa(losses, beta=0.98, bias_correction=True), color=color,
                 label=label if many else "fastopt.ewa, beta 0.98, bias-corrected", **style)
        epochs = np.arange(1, n_epochs + 1)
        if not many:
            ax2.plot(epochs, [e["train_acc"] for e in r.epochs], "o-", label="train (running)")
        ax2.plot(epochs, [e["test_acc"] for e in r.epochs], marker="s",
                 color=f"C{i + (not many)}", label=label if many else "test",
                 **(style if many else {}))
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy (mean over the batch)")
    ax1.set_title("training loss" + (" (fastopt.ewa, beta 0.98; raw faint)" if many else ""))
    ax1.legend(fontsize=8)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.set_title("test accuracy after each epoch" if many else "accuracy after each epoch")
    ax2.set_xticks(np.arange(1, len(runs[0].epochs) + 1))
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = os.path.join(directory, "train.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
