"""A pytest plugin: the conformance campaign as ordinary test items.

Installed with the package (a ``pytest11`` entry point), it does nothing unless asked:

    pytest --conformance-candidate mypkg.losses [--conformance-loss cross_entropy ...]
           [--conformance-max-examples 50] [--conformance-seed 0] [--conformance-report-dir DIR]

adds one test item per candidate x loss x check (``conformance[mypkg.losses-cross_entropy-value]``;
a file candidate is named by its base name and a hash of its path)
to whatever else pytest collects; or, in a test file of the project,

    from conformance.pytest_plugin import conformance_suite
    test_mylosses = conformance_suite("mypkg.losses", max_examples=50)

A failing item shows each failure class of its check (signature, dtypes, count, the worst
element), the diagnosis (which known convention explains it, docs/conventions.md) and the
path of its reproducer. A check the candidate does not support is skipped, with the reason.
The campaign of one candidate x loss runs once per pytest process, on its first item, and
writes its reports to ``<report dir>/<candidate>-<loss>/``; ``-k``, ``-x`` and ``--lf`` select
items as usual, and under pytest-xdist the items of one candidate x loss share an
``xdist_group`` (``--dist loadgroup`` keeps each campaign on one worker).

This module imports nothing of the harness until an item runs, so an installed plugin costs
a pytest session that does not use it nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

#: The checks of a case, as conformance.model.CHECKS (kept literal: importing the harness costs time).
CHECKS = ("value", "shape_dtype", "nan_pattern", "grad_input", "error_semantics")
LOSSES = ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
          "linear_cross_entropy")


def _checks(loss: str) -> tuple[str, ...]:
    """The per-case checks and the loss's metamorphic checks (conformance/relations.py, imported when used)."""
    from conformance.relations import of_loss
    return CHECKS + of_loss(loss)

__all__ = ["ConformanceFailure", "Settings", "check_outcome", "conformance_suite"]


@dataclass(frozen=True)
class Settings:
    """What one candidate x loss campaign is run with."""

    max_examples: int = 50
    seed: int = 0
    report_dir: str = "conformance-report"


class ConformanceFailure(AssertionError):
    """A check failed: the message lists its failure classes, diagnoses and reproducers."""


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "nbxent-conformance (conformance/pytest_plugin.py)")
    group.addoption("--conformance-candidate", action="append", default=[], metavar="SPEC",
                    help="check this loss implementation (module, file.py or SPEC:attr; repeatable): adds one "
                         "test item per candidate x loss x check")
    group.addoption("--conformance-loss", action="append", default=[], metavar="NAME", choices=LOSSES,
                    help="loss to check (repeatable; default: all of them)")
    group.addoption("--conformance-max-examples", type=int, default=Settings.max_examples, metavar="N",
                    help="fuzzed examples per candidate x loss (default: %(default)s)")
    group.addoption("--conformance-seed", type=int, default=Settings.seed, metavar="S",
                    help="seed of the campaign (default: %(default)s)")
    group.addoption("--conformance-report-dir", default=Settings.report_dir, metavar="DIR",
                    help="where each candidate x loss writes its reports and reproducers (default: %(default)s)")


def pytest_configure(config):
    # the mark exists without pytest-xdist too, so a suite using it never warns
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist runs a group's tests on one worker")


class ConformanceItem(pytest.Item):
    """One candidate x loss x check of the --conformance-candidate option."""

    def __init__(self, *, spec: str, loss: str, check: str, settings: Settings, **kw):
        super().__init__(**kw)
        self.spec, self.loss, self.check, self.settings = spec, loss, check, settings
        self.add_marker(pytest.mark.xdist_group(f"conformance-{spec}-{loss}"))

    def runtest(self):
        check_outcome(self.config, self.spec, self.loss, self.check, self.settings)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.config.rootpath, None, self.name


@pytest.hookimpl(tryfirst=True)       # before -k / -m deselection and --lf filtering see the items
def pytest_collection_modifyitems(session, config, items):
    specs = config.getoption("conformance_candidate")
    if not specs:
        return
    settings = Settings(config.getoption("conformance_max_examples"), config.getoption("conformance_seed"),
                        config.getoption("conformance_report_dir"))
    losses = config.getoption("conformance_loss") or list(LOSSES)
    from conformance.reproducer import candidate_label

    for spec in dict.fromkeys(specs):
        label = candidate_label(spec)      # a file spec by its base name: node ids cannot hold a path
        for loss in dict.fromkeys(losses):
            for check in _checks(loss):
                name = f"conformance[{label}-{loss}-{check}]"
                # the node id given as text is parsed as --lf parses its cache (the [...] as parameters)
                items.append(ConformanceItem.from_parent(session, name=name, nodeid=f"::{name}", spec=spec,
                                                         loss=loss, check=check, settings=settings))


def conformance_suite(candidate: str, losses=None, checks=None, max_examples: int = Settings.max_examples,
                      seed: int = Settings.seed, report_dir: str = Settings.report_dir):
    """A test function parametrized over loss x check, for a project's own test file.

    Args:
        candidate: the candidate's SPEC (``package.module``, ``path/to/file.py``, ``SPEC:attr``).
        losses: the losses to check (default: all); checks: the checks (default: the five per-case
            checks and the loss's metamorphic checks, conformance/relations.py).
        max_examples, seed, report_dir: as ``nbxent-conformance run``'s options.

    Returns:
        A function to assign to a ``test_*`` name at module level.
    """
    settings = Settings(max_examples, seed, report_dir)
    params = [pytest.param(loss, check, id=f"{loss}-{check}",
                           marks=pytest.mark.xdist_group(f"conformance-{candidate}-{loss}"))
              for loss in (losses or LOSSES) for check in (checks or _checks(loss))]

    @pytest.mark.parametrize(("loss", "check"), params)
    def test_conformance(loss, check, request):
        check_outcome(request.config, candidate, loss, check, settings)

    return test_conformance


_RUNS = pytest.StashKey[dict]()


def _run(config, spec: str, loss: str, settings: Settings):
    """The campaign of one candidate x loss (run once per pytest process) and its report directory."""
    runs = config.stash.setdefault(_RUNS, {})
    key = (spec, loss, settings)
    if key not in runs:
        from conformance import reports
        from conformance.config import CampaignConfig
        from conformance.engine import run_campaign
        from conformance.reproducer import safe_name

        out = os.path.join(settings.report_dir, safe_name(f"{spec}-{loss}"))
        cfg = CampaignConfig(candidates=[spec], losses=[loss], max_examples=settings.max_examples,
                             seed=settings.seed, report_dir=out)
        try:
            results = run_campaign(cfg)
        except Exception as exc:             # a candidate that cannot load fails each of its items, with why
            runs[key] = (None, out, f"{type(exc).__name__}: {exc}")
        else:
            reports.write_reports(results, out)
            runs[key] = (results, out, "")
    return runs[key]


def check_outcome(config, spec: str, loss: str, check: str, settings: Settings) -> None:
    """Pass, skip (not supported / nothing to check) or raise ConformanceFailure for one check."""
    from conformance.model import FAILING
    from conformance.reports._aggregate import class_line, diagnoses_of, diagnosis_note

    results, out, setup_error = _run(config, spec, loss, settings)
    if results is None:
        raise ConformanceFailure(f"nbxent-conformance: candidate {spec!r} could not be run: {setup_error}")
    mine = [r for r in results.results if r.check == check]
    if not mine:
        info = next((c for c in results.candidates if c.spec == spec), None)
        lacking = info.not_supported.get(loss) if info is not None else None
        na = (info.not_applicable.get(loss) or {}).get(check) if info is not None else None
        why = na or (f"not supported: {', '.join(lacking)}" if lacking else "no case of this check")
        pytest.skip(f"{spec} / {loss} / {check}: {why}")
    bad = [r for r in mine if r.status in FAILING]
    if not bad:
        return
    lines = [f"nbxent-conformance: {spec} / {loss} / {check}: {len(bad)} failing result"
             f"{'s' if len(bad) != 1 else ''} (seed {settings.seed}, {settings.max_examples} examples)"]
    diags = diagnosis_note(diagnoses_of({"diagnoses": results.diagnoses}, spec, loss))
    for c in (c for c in results.classes if c.check == check):
        cd = {k: getattr(c, k) for k in ("candidate", "loss", "check", "status", "signature", "dtypes", "count")}
        lines.append(f"  class {c.class_id}: {class_line(cd)}")
        lines.append(f"    {c.message}")
        if c.reproducer:
            lines.append(f"    reproducer: python {os.path.join(c.reproducer, 'repro.py')}")
    if diags:
        lines.append(f"  diagnosis: {diags}")
    lines.append(f"  first failing case: {bad[0].case_id}: {bad[0].message}")
    lines.append(f"  reports: {os.path.join(out, 'summary.md')}")
    raise ConformanceFailure("\n".join(lines))
