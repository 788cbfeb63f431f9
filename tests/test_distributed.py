"""nbxent.distributed on real torch.distributed process groups: 4 gloo processes on this machine
(spawned, not forked), each holding a slice of the vocabulary, and a 2-process subgroup of them
(``group=``); the sharded loss and gradients equal the unsharded ones. One spawn serves both
(a process start is dominated by ``import torch``, seconds on this machine); the workers
import only torch, numpy and nbxent.

Tolerance: the same derivation as tests/test_vocab_parallel.py (float64 statistics rounded
once): float32 results within one float32 ulp of nbxent's in-process combine of the same
shards, and within the float64-reference bound of the unsharded answer. Bitwise: the loss
is the same on every rank (every rank finishes from the same all-reduced numbers).
"""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")

N, C = 13, 37
CASES = [dict(reduction="mean"), dict(reduction="sum", label_smoothing=0.2),
         dict(reduction="none", weight=True, ignore_index=5),
         dict(reduction="mean", weight=True, label_smoothing=0.1)]


def _data(dtype=np.float32):
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((N, C))).astype(dtype)
    t = rng.integers(0, C, N)
    t[::4] = -100
    t[1] = 5
    w = rng.uniform(0.2, 2.0, C).astype(dtype)
    return x, t, w


def _target(t, case):
    return np.where(t == -100, case.get("ignore_index", -100), t)


def _cuts(world):
    # uneven slices: the vocabulary need not divide by the world size
    return [0, 20, C] if world == 2 else [0, 3, 17, 30, C]


def _kw(case, w, a, b):
    kw = dict(case)
    if kw.pop("weight", False):
        kw["weight"] = w[a:b]
    return kw


WORLD = 4


def _run_cases(rank, world, group):
    from nbxent.distributed import vocab_parallel_cross_entropy, vocab_parallel_cross_entropy_with_grad
    x, t, w = _data()
    a, b = _cuts(world)[rank], _cuts(world)[rank + 1]
    res = {}
    for k, case in enumerate(CASES):
        kw = _kw(case, w, a, b)
        tt = torch.from_numpy(_target(t, case))
        if "weight" in kw:
            kw["weight"] = torch.from_numpy(kw["weight"])
        local = torch.tensor(x[:, a:b], requires_grad=True)
        loss = vocab_parallel_cross_entropy(local, tt, a, group=group, **kw)
        upstream = torch.linspace(0.5, 1.5, N) if case["reduction"] == "none" else None
        loss.backward(upstream)
        l2, g2 = vocab_parallel_cross_entropy_with_grad(torch.tensor(x[:, a:b]), tt, a,
                                                        group=group, **kw)
        res[f"loss{k}"] = loss.detach().numpy()
        res[f"grad{k}"] = local.grad.numpy()
        res[f"loss_wg{k}"] = l2.numpy()
        res[f"grad_wg{k}"] = g2.numpy()
    # bfloat16 logits (computed in float32) keep their dtype
    lb = torch.tensor(x[:, a:b]).to(torch.bfloat16).requires_grad_()
    vocab_parallel_cross_entropy(lb, torch.from_numpy(t), a, group=group).backward()
    res["bf16_dtype"] = np.array(str(lb.grad.dtype))
    return res


def _worker(rank, port, outdir):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        pair = dist.new_group([0, 1])       # every rank takes part in creating it
        np.savez(os.path.join(outdir, f"w{WORLD}_rank{rank}.npz"), **_run_cases(rank, WORLD, None))
        if rank < 2:
            np.savez(os.path.join(outdir, f"w2_rank{rank}.npz"), **_run_cases(rank, 2, pair))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Run the workers once; ``ranks[world][r]`` is rank r's results in the world-rank run."""
    import torch.multiprocessing as mp

    outdir = tmp_path_factory.mktemp("gloo")
    old = {k: os.environ.get(k) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    os.environ.update(NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")   # 4 processes, 2 cores
    try:
        mp.spawn(_worker, args=(_free_port(), str(outdir)), nprocs=WORLD, join=True)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {w: [dict(np.load(outdir / f"w{w}_rank{r}.npz")) for r in range(w)] for w in (2, WORLD)}


@pytest.mark.parametrize("world", [2, 4])
def test_gloo_sharded_equals_unsharded(world, ranks):
    from test_vocab_parallel import assert_within, reference

    import nbxent
    from conformance.compare import ulp_error

    ranks = ranks[world]
    x, t, w = _data()
    cuts = _cuts(world)
    for k, case in enumerate(CASES):
        red = case["reduction"]
        tt = _target(t, case)
        kw_full = {kk: v for kk, v in _kw(case, w, 0, C).items() if kk != "reduction"}
        loss, G, tl, tg = reference(x, tt, reduction=red, **kw_full)
        upstream = np.linspace(0.5, 1.5, N, dtype=np.float32) if red == "none" else 1.0
        # the same loss, bitwise, on every rank; autograd and with_grad agree bitwise
        for r in range(world):
            assert np.array_equal(ranks[r][f"loss{k}"], ranks[0][f"loss{k}"]), (case, r)
            assert np.array_equal(ranks[r][f"loss_wg{k}"], ranks[0][f"loss{k}"])
            want_bw = ranks[r][f"grad_wg{k}"] * (upstream[:, None] if red == "none" else 1.0)
            assert np.array_equal(ranks[r][f"grad{k}"], want_bw.astype(np.float32))
        g = np.concatenate([ranks[r][f"grad_wg{k}"] for r in range(world)], axis=1)
        assert_within(ranks[0][f"loss{k}"], loss, tl, np.float32, f"{world} ranks {case} loss")
        assert_within(g, G, tg, np.float32, f"{world} ranks {case} grad")
        # the in-process combine of the same shards: within one float32 ulp
        spans = list(zip(cuts[:-1], cuts[1:]))
        stats = [nbxent.vocab_shard_stats(x[:, a:b], tt, a, C, **{kk: v for kk, v in
                 _kw(case, w, a, b).items() if kk != "reduction"}) for a, b in spans]
        comb = nbxent.vocab_combine(stats, red)
        assert np.all(ulp_error(ranks[0][f"loss{k}"], comb.loss, np.float32) <= 1)
        assert ranks[0]["bf16_dtype"] == "torch.bfloat16"


def test_errors_without_a_process_group():
    from nbxent.distributed import vocab_parallel_cross_entropy
    with pytest.raises(TypeError, match="vocab_parallel_cross_entropy: arguments 'local_logits'"):
        vocab_parallel_cross_entropy(np.zeros((2, 3)), np.zeros(2, np.int64), 0)
    with pytest.raises(ValueError, match="avg is not a valid value"):
        vocab_parallel_cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), 0,
                                     reduction="avg")


def test_importing_nbxent_and_nbxent_distributed_does_not_import_torch():
    import subprocess
    import sys

    # (scipy is not checked: numba itself loads it when installed; tests/test_imports.py)
    code = ("import sys, nbxent, nbxent.distributed, nbxent.cuda; "
            "bad = [m for m in ('torch', 'numba.cuda', 'conformance') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
