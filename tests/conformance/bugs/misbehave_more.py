"""More ways a candidate misbehaves: the harness must name each and keep going.

cross_entropy prints a megabyte per call and is otherwise right (the reference);
nll_loss raises SystemExit; binary_cross_entropy returns an object that cannot be
pickled; binary_cross_entropy_with_logits hangs.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    sys.stdout.write("x" * 1_000_000 + "\nthe end of a noisy call\n")
    os.write(2, b"and a line on fd 2\n")
    return ref.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                             label_smoothing=label_smoothing)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    raise SystemExit(4)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    return threading.Lock()


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    time.sleep(600)
