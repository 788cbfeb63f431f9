"""A candidate that misbehaves on purpose: the harness must survive it.

cross_entropy kills its process (abort), nll_loss hangs, binary_cross_entropy raises
where it should return, binary_cross_entropy_with_logits exits with os._exit.
"""
import os
import time


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    os.abort()


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    time.sleep(600)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    raise ZeroDivisionError("binary_cross_entropy: seeded failure")


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    os._exit(3)
