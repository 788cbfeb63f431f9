"""The metamorphic checks: chunk size, batch, materialised logits and vocabulary shards."""
import os
import sys

from conformance import metamorphic
from conformance.conventions import SHARD_CONVENTIONS

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "linear"))

import bug_lce_chunk_mean  # noqa: E402
import bug_lce_ignores_bias  # noqa: E402
import bug_vocab_local_smoothing  # noqa: E402
import lce_numpy  # noqa: E402
import vocab_numpy  # noqa: E402


def _by_check(obj, name):
    return {r.check: r for r in metamorphic.run(obj, name, seed=4)}


def test_correct_candidates_pass_every_check_they_offer():
    lin = _by_check(lce_numpy, "lce_numpy")
    assert {c: r.status for c, r in lin.items()} == {"chunk_invariance": "pass", "batch_invariance": "pass",
                                                     "materialised": "pass", "shard_split": "not supported"}
    assert all(r.cases > 0 for c, r in lin.items() if c != "shard_split")
    voc = _by_check(vocab_numpy, "vocab_numpy")
    assert voc["shard_split"].status == "pass" and voc["shard_split"].cases > 0
    assert voc["chunk_invariance"].status == "not supported"


def test_nbxent_passes_every_check():
    import nbxent
    res = _by_check(nbxent, "nbxent")
    assert {r.status for r in res.values()} == {"pass"}, {c: r.message for c, r in res.items()}


def test_a_dropped_bias_fails_the_materialised_check():
    assert _by_check(bug_lce_ignores_bias, "bias")["materialised"].status == "fail"


def test_a_chunk_normalised_mean_fails_chunk_invariance():
    res = _by_check(bug_lce_chunk_mean, "chunk")
    assert res["chunk_invariance"].status == "fail"
    assert res["batch_invariance"].status == "pass"          # 'none' is right: only the mean is wrong


def test_megatron_local_smoothing_is_caught_and_named():
    r = _by_check(bug_vocab_local_smoothing, "megatron")["shard_split"]
    assert r.status == "fail"
    assert set(r.diagnoses) == {"vocab_parallel_local_smoothing"}
    assert "explained by: vocab_parallel_local_smoothing" in r.failures[0][1]
    assert "Megatron-LM" in SHARD_CONVENTIONS["vocab_parallel_local_smoothing"].followed_by[0]


def test_a_per_sample_bug_fails_batch_invariance():
    class Neighbours:
        """A 'none' loss that leaks its neighbour's loss (a wrong row offset in a chunk loop)."""
        @staticmethod
        def linear_cross_entropy(input, linear_weight, target, **kw):
            out = lce_numpy.linear_cross_entropy(input, linear_weight, target, **kw)
            if kw.get("reduction") == "none" and out.size > 1:
                out = out.copy()
                out[0] = out[-1]
            return out

    assert _by_check(Neighbours, "neighbours")["batch_invariance"].status == "fail"
