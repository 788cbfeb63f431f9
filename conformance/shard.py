"""Sharding a campaign for a CI matrix, and merging the shards' reports into one run's.

A shard is a set of losses: shard K of N runs the losses at positions K-1, K-1+N, ...
of the campaign's loss list, on every candidate, with the same seed, so it draws exactly
the cases the unsharded run draws for those losses. A loss is the unit because
everything a campaign shares between its candidate x loss plans (the per-case oracle
cache, whose cross-checks make the findings) is keyed by the loss: the shards' results,
classes, diagnoses, findings and accuracy points are disjoint, and putting them back in
the unsharded run's order (loss, then candidate) gives that run's reports.
:func:`merge` does that and copies the reproducers.
"""
from __future__ import annotations

import os
import shutil

from conformance.model import RunResults

#: Configuration keys that may differ between the shards of one campaign.
_PER_SHARD = ("shard", "report_dir")


class MergeError(ValueError):
    """The directories given to :func:`merge` are not the complete shards of one campaign."""


def parse_shard(text: str) -> list[int]:
    """``"K/N"`` -> ``[K, N]`` with 1 <= K <= N (ValueError otherwise)."""
    k, sep, n = text.partition("/")
    try:
        if not sep:
            raise ValueError
        ki, ni = int(k), int(n)
    except ValueError:
        raise ValueError(f"--shard: expected K/N (e.g. 2/4), got {text!r}") from None
    if not 1 <= ki <= ni:
        raise ValueError(f"--shard: need 1 <= K <= N, got {text!r}")
    return [ki, ni]


def shard_losses(losses: list[str], shard: list[int] | tuple[int, int] | None) -> list[str]:
    """The losses shard ``[K, N]`` runs (all of them without a shard)."""
    if not shard:
        return list(losses)
    k, n = shard
    return [loss for i, loss in enumerate(losses) if i % n == k - 1]


def _order(config: dict):
    """The unsharded run's order of its candidate x loss plans: loss by loss, candidate by candidate."""
    losses, cands = config.get("losses") or [], config.get("candidates") or []

    def key(candidate: str, loss: str) -> tuple[int, int]:
        return (losses.index(loss) if loss in losses else len(losses),
                cands.index(candidate) if candidate in cands else len(cands))
    return key


def merge(shards: list[tuple[str, RunResults]], out_dir: str) -> RunResults:
    """One run's results from its shards' ``(directory, results)``; copies their reproducers into ``out_dir``.

    Raises:
        MergeError: a directory is not a shard, the shards come from different campaigns
            (configuration or seed), one is missing or given twice.
    """
    if not shards:
        raise MergeError("merge: no shard given")
    first = shards[0][1]
    n = (first.config.get("shard") or [0, 0])[1]
    seen: dict[int, str] = {}
    common = {k: v for k, v in first.config.items() if k not in _PER_SHARD}
    for d, run in shards:
        sh = run.config.get("shard")
        if not sh:
            raise MergeError(f"merge: {d} is not a shard's report (it was run without --shard)")
        if sh[1] != n:
            raise MergeError(f"merge: {d} is shard {sh[0]}/{sh[1]}, the others are of {n}")
        if sh[0] in seen:
            raise MergeError(f"merge: shard {sh[0]}/{n} given twice ({seen[sh[0]]} and {d})")
        seen[sh[0]] = d
        mine = {k: v for k, v in run.config.items() if k not in _PER_SHARD}
        if mine != common:
            diff = sorted(k for k in set(mine) | set(common) if mine.get(k) != common.get(k))
            raise MergeError(f"merge: {d} comes from another campaign (its {', '.join(diff)} differ)")
    missing = [k for k in range(1, n + 1) if k not in seen]
    if missing:
        raise MergeError(f"merge: shard{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(f'{k}/{n}' for k in missing)} missing")
    shards = sorted(shards, key=lambda s: s[1].config["shard"][0])
    key = _order(first.config)
    out_repro = os.path.join(out_dir, "reproducers")
    results, classes, diagnoses, accuracy, findings, candidates = [], [], [], [], [], []
    cases_run: dict[str, int] = {}
    for d, run in shards:
        src = os.path.join(d, "reproducers")
        if os.path.isdir(src):
            shutil.copytree(src, out_repro, dirs_exist_ok=True)
        prefix = os.path.join(run.config.get("report_dir") or d, "reproducers")
        for item in (*run.results, *run.classes):
            if item.reproducer and item.reproducer.startswith(prefix):
                item.reproducer = out_repro + item.reproducer[len(prefix):]
        results += run.results
        classes += run.classes
        diagnoses += run.diagnoses
        accuracy += run.accuracy
        findings += run.findings
        for c in run.candidates:
            if all(c.spec != o.spec for o in candidates):
                candidates.append(c)
        for loss, k in run.cases_run.items():
            cases_run[loss] = cases_run.get(loss, 0) + k
    # sorted() is stable: within one plan (all from one shard) the order is the shard's, the run's
    results.sort(key=lambda r: key(r.candidate, r.loss))
    classes.sort(key=lambda c: key(c.candidate, c.loss))
    diagnoses.sort(key=lambda d: key(d["candidate"], d["loss"]))
    accuracy.sort(key=lambda p: key(p[0], p[1]))
    losses = first.config.get("losses") or []
    findings.sort(key=lambda f: losses.index(f.loss) if f.loss in losses else len(losses))
    cands = first.config.get("candidates") or []
    candidates.sort(key=lambda c: cands.index(c.spec) if c.spec in cands else len(cands))
    cases_run = dict(sorted(cases_run.items(), key=lambda kv: losses.index(kv[0]) if kv[0] in losses else len(losses)))
    partial = "; ".join(f"shard {run.config['shard'][0]}/{n}: {run.partial}" for _, run in shards if run.partial)
    config = dict(first.config, shard=None, report_dir=out_dir)
    return RunResults(seed=first.seed, started=min(r.started for _, r in shards),
                      finished=max(r.finished for _, r in shards),
                      duration_s=round(sum(r.duration_s for _, r in shards), 3), config=config,
                      environment=dict(first.environment), candidates=candidates, results=results,
                      findings=findings, cases_run=cases_run, classes=classes, diagnoses=diagnoses,
                      partial=partial, accuracy=accuracy,
                      profile=next((r.profile for _, r in shards if r.profile), {}))
