"""The library of known conventions: each one way an implementation departs from torch.

A :class:`Convention` is one or a few alternative settings of one knob of the
parametrised reference (``_semantics.Semantics``). Its :meth:`Convention.references`
gives the float64 outcomes a case has under it, and nothing where the convention
makes no difference for that case (so torch's own output is never "explained").
``followed_by`` names libraries only where their public source or documentation
shows the behaviour; docs/conventions.md lists the same table.
"""
from __future__ import annotations

from dataclasses import dataclass

from conformance.conventions._match import Matcher, same_outcome
from conformance.conventions._semantics import Outcome, Semantics, evaluate
from conformance.model import Case

__all__ = ["CONVENTIONS", "Convention"]

CLASS = ("cross_entropy", "nll_loss")
CE = ("cross_entropy",)
BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
ALL = CLASS + BINARY


@dataclass(frozen=True)
class Convention:
    """A known alternative semantics, with a stable id (used in reports)."""

    id: str
    summary: str                        # one line
    losses: tuple[str, ...]
    settings: tuple[Semantics, ...]     # alternatives; any one of them is this convention
    followed_by: tuple[str, ...] = ()   # libraries, where public sources show it
    section: str = ""                   # the torch behaviour it departs from: "docs/semantics.md §N"
    checks: tuple[str, ...] = ("value", "nan_pattern", "grad_input")   # the checks it can explain

    def references(self, case: Case) -> list[Outcome]:
        """The float64 outcome of ``case`` under each alternative setting ([] for another loss)."""
        return [evaluate(case, s) for s in self.settings] if case.loss in self.losses else []

    def reference(self, case: Case) -> Outcome | None:
        """The float64 outcome under the first alternative that differs from torch's, else None."""
        torch_out, m = evaluate(case), Matcher()
        for o in self.references(case):
            if not same_outcome(o, torch_out, m):
                return o
        return None


S = Semantics


def _in_dtype_and_f64(**kw) -> tuple[Semantics, Semantics]:
    """A precision convention evaluated in the candidate's dtype, and (an alternative) in float64."""
    return S(**kw), S(compute_dtype="float64", **kw)

_LIST = [
    Convention("weighted_mean_by_count",
               "weighted 'mean' divides by the number of non-ignored samples, not by sum w[t]",
               CLASS, (S(mean_denominator="count"),),
               ("Keras (class_weight becomes a sample weight; reduction sum_over_batch_size divides by the batch size)",),
               "docs/semantics.md §3.1"),
    Convention("mean_includes_ignored",
               "'mean' counts ignored samples in its denominator (each as 1)",
               CLASS, (S(mean_denominator="all_rows"),),
               ("TransformerEngine (transformer_engine/pytorch/triton/cross_entropy.py: the mean divides by "
                "all B*SQ rows)",), "docs/semantics.md §3.1, §4"),
    Convention("ignored_rows_count_weight_of_class0",
               "weighted 'mean' adds w[0] to the denominator for every ignored sample (the masked index read as 0)",
               CLASS, (S(mean_denominator="all_rows_w0"),), (), "docs/semantics.md §3.1, §4"),
    Convention("empty_mean_zero",
               "'mean' of an empty or all-ignored batch (zero denominator) is 0 where torch gives NaN",
               ALL, (S(empty_mean="zero"),), (), "docs/semantics.md §3.2, §1.2"),
    Convention("smoothing_eps_over_c_minus_1",
               "label smoothing gives the target 1-eps and every other class eps/(C-1) (torch: eps/C to all)",
               CE, (S(smoothing="eps_over_c_minus_1"),),
               ("Megatron-LM (megatron/core/tensor_parallel/cross_entropy.py: smoothing = eps*V/(V-1))",
                "NeMo (SmoothedCrossEntropy, the formula Megatron-LM cites)"), "docs/semantics.md §5.1"),
    Convention("smoothing_on_ignored_rows",
               "the label-smoothing term is added for ignored samples too",
               CE, (S(smoothing_on_ignored=True),), (), "docs/semantics.md §5.3"),
    Convention("smoothing_weighted_by_target",
               "weighted label smoothing scales the whole smoothed row by w[t] (textbook) instead of w_c per class",
               CE, (S(smoothing="weighted_by_target"),), (), "docs/semantics.md §5.1"),
    Convention("prob_target_smoothing_ignored",
               "label_smoothing is not applied to probability targets",
               CE, (S(prob_smoothing=False),), (), "docs/semantics.md §6"),
    Convention("prob_mean_by_weight_sum",
               "probability-target 'mean' divides by sum(w * p) instead of the sample count",
               CE, (S(prob_mean="weight_sum"),), (), "docs/semantics.md §6"),
    Convention("probability_clipped",
               "binary_cross_entropy clips the probability to [c, 1-c] (c = 1e-7, 1e-12 or the dtype's eps) "
               "instead of clamping each log at -100",
               ("binary_cross_entropy",),
               tuple(S(clip=c, bce_log_clamp=None) for c in (1e-7, 1e-12)) + (S(clip=-1.0, bce_log_clamp=None),),
               ("Keras (clip to [epsilon, 1-epsilon], epsilon = 1e-7)",), "docs/semantics.md §7.1"),
    Convention("bce_no_log_clamp",
               "binary_cross_entropy without the clamp of each log at -100 (inf at x in {0, 1})",
               ("binary_cross_entropy",), (S(bce_log_clamp=None),), (), "docs/semantics.md §7.1"),
    Convention("bce_grad_no_floor",
               "the BCE gradient divides by x(1-x) without torch's float32(1e-12) floor (none, or a float64 1e-12)",
               ("binary_cross_entropy",), (S(bce_grad_floor=0.0), S(bce_grad_floor=1e-12)), (),
               "docs/semantics.md §10.3", ("grad_input",)),
    Convention("bce_mean_by_weight_sum",
               "BCE 'mean' divides by the sum of the (broadcast) weights instead of the element count",
               BINARY, (S(bce_mean="weight_sum"),), (), "docs/semantics.md §3.4"),
    Convention("pos_weight_on_negative_term",
               "pos_weight multiplies the (1-y) term instead of the y term",
               ("binary_cross_entropy_with_logits",), (S(pos_weight_term="negative"),), (), "docs/semantics.md §8.1"),
    Convention("pos_weight_on_class_dim",
               "a 1-D pos_weight applies along dim 1 (channels) instead of the last dim",
               ("binary_cross_entropy_with_logits",), (S(pos_weight_axis="class"),), (), "docs/semantics.md §8.3",
               ("value", "nan_pattern", "grad_input", "error_semantics")),
    Convention("class_axis_last",
               "classes are on the last axis of an (N, ..., C) input (torch: dim 1)",
               CLASS, (S(class_axis="last"),),
               ("optax / JAX (axis=-1)", "TensorFlow tf.nn.*softmax_cross_entropy_with_logits (axis=-1)",
                "Keras (channels last)", "TransformerEngine (Triton cross entropy on [B, SQ, V])"),
               "docs/semantics.md §1.1"),
    Convention("negative_target_wraps",
               "a negative class index reads class t mod C (NumPy indexing) where torch raises IndexError",
               CLASS, (S(negative_targets="wrap"),), ("plain NumPy fancy indexing",), "docs/semantics.md §4",
               ("error_semantics", "value", "grad_input")),
    Convention("out_of_range_target_unchecked",
               "an out-of-range class index returns a value (unchecked read, clamp or NaN) where torch raises",
               CLASS, (S(out_of_range="unchecked"),),
               ("JAX (out-of-bounds gather indices are clamped or filled, never raised: jax.numpy sharp bits)",), "docs/semantics.md §4",
               ("error_semantics",)),
    Convention("ignore_index_range_checked",
               "targets are range-checked before ignore_index is masked: a target equal to an out-of-range "
               "ignore_index raises",
               CLASS, (S(range_check="before_ignore"),), (), "docs/semantics.md §4", ("value", "grad_input")),
    Convention("none_output_flattened",
               "reduction='none' returns a flat (S,) array instead of the (N, d1, ...) sample shape",
               ALL, (S(none_shape="flat"),), (), "docs/semantics.md §1.1", ("shape_dtype",)),
    Convention("result_dtype_differs",
               "the result dtype is not torch's (input dtype, or always float64/float32) where torch promotes",
               ALL, tuple(S(result_dtype=d) for d in ("input", "float64", "float32")), (),
               "docs/semantics.md §2.4, §2.6", ("shape_dtype", "value", "nan_pattern")),
    Convention("target_broadcasts",
               "a target (or batch) of another shape that broadcasts is accepted where torch raises",
               ALL, (S(target_broadcasts=True),), ("NumPy broadcasting",), "docs/semantics.md §1.1, §1.4",
               ("error_semantics",)),
    Convention("any_int_target_accepted",
               "class-index targets of any integer dtype (int32, ...) are read as int64 where torch raises "
               "RuntimeError (the any_int_target extension, if intended)",
               CLASS, (S(dtypes_accepted=("any_int_target",)),),
               ("JAX / NumPy (any integer index dtype)", "nbxent (declared: any_int_target)"),
               "docs/semantics.md §2.2", ("error_semantics",)),
    Convention("any_float_weight_accepted",
               "a class weight of another float dtype than the input is cast where torch raises RuntimeError "
               "(the any_float_weight extension, if intended)",
               CLASS, (S(dtypes_accepted=("any_float_weight",)),),
               ("JAX / NumPy (type promotion)", "nbxent (declared: any_float_weight)"),
               "docs/semantics.md §2.3", ("error_semantics",)),
    Convention("lse_no_max_shift",
               "log-softmax as x - log(sum(exp(x))) without the max shift (inf/NaN for large logits)",
               CE, _in_dtype_and_f64(lse="unshifted"), (), "docs/semantics.md §0, §2.7"),
    Convention("naive_log_sigmoid",
               "log_sigmoid as log(1/(1+exp(-x))): inf for large negative logits, 0 for tiny losses",
               ("binary_cross_entropy_with_logits",), _in_dtype_and_f64(log_sigmoid="naive"), (),
               "docs/semantics.md §8.1", ("value", "nan_pattern")),
    Convention("low_precision_accumulation",
               "sums (the exp-sum over classes and/or the batch reduction) added one by one in the input dtype",
               ALL, (S(accumulate="lse"), S(accumulate="batch"), S(accumulate="both")), (),
               "docs/semantics.md §2.7", ("value",)),
    Convention("ignored_rows_have_gradient",
               "ignored samples receive a nonzero gradient (softmax, or the unmasked target term)",
               CLASS, (S(ignored_grad=True),), (), "docs/semantics.md §10.2", ("grad_input",)),
    Convention("nan_leaks_from_ignored_rows",
               "NaN/inf logits in an ignored sample leak into the loss (masked by multiplying with 0)",
               CLASS, (S(nan_leak=True),), (), "docs/semantics.md §9", ("value", "nan_pattern")),
    # The LLM options (docs/semantics.md §13.1; nbxent and Liger-Kernel: unweighted z-loss on valid rows, its
    # 'mean' over their count; the smoothing term on the capped logits)
    Convention("z_loss_weighted",
               "the z-loss is scaled by the target's class weight and its 'mean' divides by sum w[t] "
               "(reduced exactly like the loss)",
               CE, (S(z_loss="weighted"),), (), "docs/semantics.md §13.1"),
    Convention("z_loss_on_ignored_rows",
               "ignored samples add their z-loss too, and its 'mean' divides by every sample",
               CE, (S(z_loss="all_rows"),), (), "docs/semantics.md §13.1"),
    Convention("softcap_smoothing_on_raw_logits",
               "label smoothing's uniform term is computed from the uncapped logits",
               CE, (S(softcap_smoothing="raw"),), (), "docs/semantics.md §13.1"),
]

#: The registry: id -> Convention (stable ids; docs/conventions.md describes each).
CONVENTIONS: dict[str, Convention] = {c.id: c for c in _LIST}
