"""The issue's "done when": a real torch training loop (a small conv net with batch norm, AdamW,
a warm-up + cosine scheduler, torch's gradient clipping, a checkpoint saved and loaded mid-run)
runs unchanged with ``fastopt.torch.AdamW`` in place of ``torch.optim.AdamW``; the resumed run
ends with exactly the bits of the uninterrupted one, and both with the bits of
``fastopt.reference.AdamW`` fed the same gradients and learning rates."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastopt  # noqa: E402
import fastopt.reference as ref  # noqa: E402
import fastopt.torch as fo  # noqa: E402

STEPS, CHECKPOINT_AT = 12, 5


def build(optimizer_class):
    torch.manual_seed(0)
    # No bias before batch norm (as usual): its gradient is 0 up to rounding, and Adam turns
    # rounding noise into full-size steps, so two implementations would differ there by ~lr a
    # step (the torch comparisons below would fail on it, not the bit-for-bit one).
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10))
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = optimizer_class([{"params": decay, "weight_decay": 0.05},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=3e-3)
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, 0.1, 1.0, total_iters=3),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=STEPS - 3)],
        milestones=[3])
    return model, optimizer, scheduler


def batch(step):
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(8, 1, 6, 6, generator=g), torch.randint(0, 10, (8,), generator=g)


def train(model, optimizer, scheduler, start, stop, record=None):
    """A plain torch loop: nothing in it knows which optimizer it drives."""
    model.train()
    for step in range(start, stop):
        x, y = batch(step)
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if record is not None:
            record.append(([g["lr"] for g in optimizer.param_groups],
                           [[p.grad.detach().numpy().copy() for p in g["params"]]
                            for g in optimizer.param_groups]))
        optimizer.step()
        scheduler.step()


def run(optimizer_class, checkpoint_path=None, record=None):
    model, optimizer, scheduler = build(optimizer_class)
    if checkpoint_path is None:
        train(model, optimizer, scheduler, 0, STEPS, record)
        return model
    train(model, optimizer, scheduler, 0, CHECKPOINT_AT, record)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, checkpoint_path)
    del model, optimizer, scheduler
    model, optimizer, scheduler = build(optimizer_class)  # as a new process would
    checkpoint = torch.load(checkpoint_path)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    train(model, optimizer, scheduler, CHECKPOINT_AT, STEPS, record)
    return model


def params_of(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("threads", [1, 2])
def test_drop_in_adamw_with_scheduler_and_checkpoint(tmp_path, threads):
    with fastopt.num_threads(threads):
        record = []
        straight = run(fo.AdamW, record=record)
        resumed = run(fo.AdamW, tmp_path / "ckpt.pt")
    for a, b in zip(params_of(straight), params_of(resumed)):
        np.testing.assert_array_equal(a, b)
    # The reference, group by group, fed the recorded gradients and learning rates.
    model, optimizer, _ = build(torch.optim.AdamW)
    groups = [[p.detach().numpy().copy() for p in g["params"]] for g in optimizer.param_groups]
    references = [ref.AdamW(arrays, lr=3e-3, weight_decay=g["weight_decay"])
                  for arrays, g in zip(groups, optimizer.param_groups)]
    for lrs, grads in record:
        for reference, lr, g in zip(references, lrs, grads):
            reference.lr = float(lr)
            reference.step(g)
    ours = [[p.detach().numpy() for p in g] for g in
            ([p for n, p in straight.named_parameters() if p.ndim > 1],
             [p for n, p in straight.named_parameters() if p.ndim <= 1])]
    for reference, arrays in zip(references, ours):
        for want, got in zip(reference.params, arrays):
            np.testing.assert_array_equal(got, want)


def test_the_same_loop_runs_torchs_adamw_to_nearly_the_same_weights(tmp_path):
    ours = run(fo.AdamW, tmp_path / "a.pt")
    theirs = run(torch.optim.AdamW, tmp_path / "b.pt")
    for a, b in zip(params_of(ours), params_of(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)  # other rounding, same rule


def test_a_checkpoint_of_torchs_adamw_resumes_in_fastopt(tmp_path):
    model, optimizer, scheduler = build(torch.optim.AdamW)
    train(model, optimizer, scheduler, 0, CHECKPOINT_AT)
    path = tmp_path / "torch.pt"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, path)
    model2, optimizer2, scheduler2 = build(fo.AdamW)
    checkpoint = torch.load(path)
    model2.load_state_dict(checkpoint["model"])
    optimizer2.load_state_dict(checkpoint["optimizer"])
    scheduler2.load_state_dict(checkpoint["scheduler"])
    train(model2, optimizer2, scheduler2, CHECKPOINT_AT, STEPS)
    train(model, optimizer, scheduler, CHECKPOINT_AT, STEPS)
    for a, b in zip(params_of(model), params_of(model2)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
