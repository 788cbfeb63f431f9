"""The ``nbxent-conformance`` command (also ``python -m conformance``).

    nbxent-conformance run [--candidate SPEC ...] [--loss NAME ...] [--oracle NAME ...]
                           [--dtype NAME ...] [--max-examples N] [--seed S] [--report-dir DIR]
                           [--strict-errors] [--shard K/N] [--time-budget SECONDS]
                           [--case ID ...] [--rerun-failed REPORT_JSON]
    nbxent-conformance merge SHARD_DIR ... [--report-dir DIR]
    nbxent-conformance list-candidates
    nbxent-conformance report REPORT_JSON [--report-dir DIR]
    nbxent-conformance profile --candidate SPEC [SPEC ...] [--json]

Exit status: 0 every check passed; 1 at least one conformance failure (fail,
error, crash or timeout); 2 usage or setup error (bad option, a candidate that
cannot be found, an unknown loss, a report directory that cannot be written,
nothing to check, an interrupted run without failures so far, or an internal error of
the harness, whose traceback is printed). A run that exits 2 never writes a PASS report.

Reports are rewritten after every candidate x loss (marked partial until the run
ends) and on SIGINT / SIGTERM, so a CI job killed by its own timeout keeps them.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
import traceback
from typing import Sequence

from conformance import candidates, losses
from conformance.config import BUILTIN_CANDIDATES, DTYPES, EXTRA_DTYPES, ORACLES, CampaignConfig
from conformance.model import LOSSES

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

EXIT_HELP = """\
Exit status:
  0  every check passed (cases where only torch is wrong count as passes)
  1  at least one conformance failure: fail, error, crash or timeout
  2  usage or setup error: a bad option, a candidate that cannot be found or imported, an
     unknown loss, a report directory that cannot be written, nothing to check, an
     interrupted run with no failure so far, or an internal error of the harness
"""

CI_HELP = """\
CI at scale:
  --shard K/N        run shard K of N (the losses at positions K, K+N, ... with every candidate,
                     the same seed and cases as the unsharded run); then
                     nbxent-conformance merge DIR1 DIR2 ... --report-dir DIR writes the reports
                     the unsharded run would have written.
  --case ID          re-run one case of a report (its case id, e.g. cross_entropy/fuzz/0-000012 or
                     nll_loss/catalogue/...), with the options of the run that reported it
  --rerun-failed R   re-run the failed cases of report.json R, with its candidates and options
  $GITHUB_STEP_SUMMARY, when set, gets summary.md appended.
"""

CANDIDATE_HELP = """\
A candidate is an implementation of the losses under test, named by a SPEC:

  nbxent                the built-in NumPy/Numba CPU backend
  nbxent.cuda           the CUDA backend (on the CUDA simulator when no GPU is present)
  torch                 torch.nn.functional itself, on CPU (the behaviour everything is measured against)
  package.module        any importable module exposing some of cross_entropy, nll_loss,
                        binary_cross_entropy, binary_cross_entropy_with_logits on NumPy arrays
  path/to/file.py       the same, loaded from a file
  SPEC:attr             an attribute of the module (an object or namespace holding the functions)

A candidate implements as much as it likes: a loss or keyword it lacks is reported
as "not supported" (skipped), never failed. See docs/conformance.md and
docs/candidates.md for the optional declaration of supported features.
"""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error already; this only makes ``error`` testable and uniform."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return v


def _shard(text: str) -> list[int]:
    from conformance.shard import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def version_string() -> str:
    import importlib.metadata

    from conformance.reports.json_report import SCHEMA_VERSION

    try:
        v = importlib.metadata.version("nbxent")
    except importlib.metadata.PackageNotFoundError:
        v = "(not installed)"
    return f"nbxent-conformance {v} (report.json schema {SCHEMA_VERSION})"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nbxent-conformance",
        description="Fuzz classification-loss implementations against exact (mpmath / float64) "
                    "oracles and torch semantics; write report.json, junit.xml and summary.md.",
        epilog=CANDIDATE_HELP + "\nExit status: 0 all checks pass, 1 conformance failure, 2 usage or setup error.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    parser.add_argument("--version", action="version", version=version_string())
    run = sub.add_parser("run", help="run a campaign and write the reports",
                         epilog=CANDIDATE_HELP + "\n" + CI_HELP + "\n" + EXIT_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--candidate", "-c", dest="candidates", action="extend", nargs="+", metavar="SPEC",
                     help=f"implementation to check (repeatable; default: {' '.join(BUILTIN_CANDIDATES)})")
    run.add_argument("--loss", "-l", dest="losses", action="extend", nargs="+", metavar="NAME", choices=LOSSES,
                     help=f"loss to check (repeatable; default: all of {', '.join(LOSSES)})")
    run.add_argument("--oracle", dest="oracles", action="extend", nargs="+", metavar="NAME", choices=ORACLES,
                     help=f"reference implementation (repeatable; default: {', '.join(ORACLES)})")
    run.add_argument("--dtype", dest="dtypes", action="extend", nargs="+", metavar="NAME", choices=DTYPES + EXTRA_DTYPES,
                     help=f"input dtype to generate (repeatable; default: {', '.join(DTYPES)})")
    default = CampaignConfig()
    run.add_argument("--max-examples", type=_positive_int, default=default.max_examples, metavar="N",
                     help="fuzzed examples per candidate and loss (default: %(default)s)")
    run.add_argument("--seed", type=_seed, default=default.seed, metavar="S",
                     help="seed of the whole campaign; the same seed reproduces the same cases (default: %(default)s)")
    run.add_argument("--report-dir", default=default.report_dir, metavar="DIR",
                     help="where the reports and reproducers go (default: ./%(default)s/)")
    run.add_argument("--case-timeout", type=float, default=default.case_timeout_s, metavar="SECONDS",
                     help="time limit per call of a candidate, first (compiling) call included (default: %(default)s)")
    run.add_argument("--no-catalogue", action="store_true",
                     help="fuzzed cases only; skip the catalogue of hand-picked edge cases")
    run.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    run.add_argument("--strict-errors", action="store_true",
                     help="an invalid input must raise torch's exception type; by default any exception passes "
                          "and another type is reported as a difference (nbxent's candidates are always strict)")

    run.add_argument("--profile", action="store_true",
                     help="also make the candidates' semantic profile (docs/conventions.md) for the reports "
                          "(with --shard, shard 1 makes it)")
    run.add_argument("--shard", type=_shard, metavar="K/N",
                     help="run shard K of N of the campaign (a CI matrix; see merge)")
    run.add_argument("--time-budget", type=_positive_float, metavar="SECONDS",
                     help="wall-clock budget: each candidate x loss fuzzes for at most its share of what is left "
                          "(the catalogue always runs; the reports say how many examples were judged)")
    run.add_argument("--case", dest="case_ids", action="append", metavar="ID",
                     help="re-run only this case id of a report (repeatable; fuzz ids carry their seed)")
    run.add_argument("--rerun-failed", metavar="REPORT_JSON",
                     help="re-run the failed cases of a report.json, with its candidates, seed and options")

    mrg = sub.add_parser("merge", help="merge the report directories of the shards of one campaign (run --shard)",
                         epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    mrg.add_argument("shard_dirs", nargs="+", metavar="SHARD_DIR", help="a shard's report directory")
    mrg.add_argument("--report-dir", default=default.report_dir, metavar="DIR",
                     help="where the merged reports go (default: ./%(default)s/)")

    sub.add_parser("list-candidates", help="explain candidates and list the built-in ones",
                   epilog=CANDIDATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)

    prof = sub.add_parser("profile", help="what each candidate does, axis by axis, beside torch (docs/conventions.md)")
    prof.add_argument("--candidate", "-c", dest="candidates", action="extend", nargs="+", metavar="SPEC", required=True,
                      help="implementation to profile (repeatable; see list-candidates)")
    prof.add_argument("--json", action="store_true", help="print the profile as JSON instead of a table")

    rep = sub.add_parser("report", help="re-render junit.xml, summary.md and the console summary from a report.json")
    rep.add_argument("report_json", metavar="REPORT_JSON")
    rep.add_argument("--report-dir", metavar="DIR", help="where to write (default: the report.json's directory)")
    return parser


def check_candidate_spec(spec: str) -> str | None:
    """Why ``spec`` cannot name a candidate, or None if it looks loadable.

    Only locates the module (nothing is imported here: candidates run in worker
    processes, so a candidate that crashes at import cannot take the CLI down).
    """
    try:
        target, _ = candidates.resolve(spec)
    except candidates.CandidateLoadError as exc:
        return str(exc)
    if target.endswith(".py") or os.sep in target or "/" in target:
        if not os.path.isfile(target):
            return f"no such file: {target}"
        return None
    try:
        found = importlib.util.find_spec(target)
    except (ImportError, ValueError) as exc:
        return f"cannot import {target}: {exc}"
    return None if found is not None else f"no module named {target!r}"


def check_report_dir(path: str) -> str | None:
    """Why reports cannot be written to ``path``, or None (the directory is created)."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None


def _run_campaign(config: CampaignConfig, progress, checkpoint=None):
    """The engine entry point (an indirection so tests can replace the engine)."""
    from conformance.engine import run_campaign

    return run_campaign(config, progress, checkpoint)


class Interrupted(BaseException):
    """Raised in the main thread by the SIGTERM handler: the run stops and writes partial reports."""


def _on_sigterm(signum, frame):
    raise Interrupted(f"signal {signal.Signals(signum).name}")


#: What a previous run wrote into a report directory (removed before a new run writes there).
_REPORT_FILES = ("report.json", "junit.xml", "summary.md", "report.html")


def clean_report_dir(path: str) -> None:
    """Remove the reports and reproducers of an earlier run (nothing else in the directory)."""
    shutil.rmtree(os.path.join(path, "reproducers"), ignore_errors=True)
    for name in _REPORT_FILES:
        try:
            os.remove(os.path.join(path, name))
        except FileNotFoundError:
            pass


#: What the engine raises for a setup problem: a candidate that cannot be imported or
#: declares nonsense (candidates.CandidateLoadError), an oracle whose library is missing
#: (oracles.OracleUnavailable); both are ImportErrors.
_SETUP_ERRORS = (ImportError, FileNotFoundError, losses.UnknownLoss)


def cmd_run(args: argparse.Namespace) -> int:
    from conformance import reports

    config = CampaignConfig(max_examples=args.max_examples, seed=args.seed, report_dir=args.report_dir,
                            case_timeout_s=args.case_timeout, run_catalogue=not args.no_catalogue,
                            strict_errors=args.strict_errors, dtypes_requested=bool(args.dtypes))
    for attr in ("candidates", "losses", "oracles", "dtypes"):
        given = getattr(args, attr)
        if given:
            setattr(config, attr, list(dict.fromkeys(given)))
    why = _selection(args, config)
    if why:
        print(f"nbxent-conformance: {why}", file=sys.stderr)
        return EXIT_PASS if why.startswith("nothing to re-run") else EXIT_USAGE
    for spec in config.candidates:
        why = check_candidate_spec(spec)
        if why:
            print(f"nbxent-conformance: error: candidate {spec!r}: {why}", file=sys.stderr)
            return EXIT_USAGE
    why = check_report_dir(config.report_dir)
    if why:
        print(f"nbxent-conformance: error: report directory not writable: {why}", file=sys.stderr)
        return EXIT_USAGE

    clean_report_dir(config.report_dir)
    bar = None if args.no_progress else reports.ProgressBar(sys.stderr)

    def checkpoint(partial_results):
        reports.write_reports(partial_results, config.report_dir)

    old_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        results = _run_campaign(config, bar, checkpoint)
    except _SETUP_ERRORS as exc:
        msg = str(exc)
        if not msg.startswith(type(exc).__name__):
            msg = f"{type(exc).__name__}: {msg}"
        print(f"nbxent-conformance: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Interrupted) as exc:
        if bar is not None:
            bar.close()
        partial = getattr(exc, "results", None)
        print(f"nbxent-conformance: interrupted ({exc or type(exc).__name__})", file=sys.stderr)
        if partial is None:
            return EXIT_USAGE
        paths = reports.write_reports(partial, config.report_dir)
        reports.print_summary(partial, paths)
        return EXIT_FAIL if partial.failed else EXIT_USAGE
    finally:
        signal.signal(signal.SIGTERM, old_handler)
        if bar is not None:
            bar.close()
    if not results.results:
        print("nbxent-conformance: error: nothing was checked (no candidate implements any selected loss)",
              file=sys.stderr)
        reports.write_reports(results, config.report_dir)      # verdict 'empty': never a PASS
        return EXIT_USAGE
    if args.profile and (not config.shard or config.shard[0] == 1):
        from conformance.profile import profile

        results.profile = profile(config.candidates)
    paths = reports.write_reports(results, config.report_dir)
    reports.print_summary(results, paths)
    step_summary(paths["markdown"])
    return EXIT_FAIL if results.failed else EXIT_PASS


def step_summary(markdown_path: str) -> None:
    """Append summary.md to ``$GITHUB_STEP_SUMMARY`` when it is set (GitHub Actions' job summary)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    try:
        with open(markdown_path, encoding="utf-8") as src, open(target, "a", encoding="utf-8") as dst:
            dst.write(src.read() + "\n")
    except OSError as exc:
        print(f"nbxent-conformance: warning: cannot write $GITHUB_STEP_SUMMARY ({target}): {exc}", file=sys.stderr)


def _selection(args: argparse.Namespace, config: CampaignConfig) -> str | None:
    """Apply --shard, --time-budget, --case and --rerun-failed to ``config``; returns why not, or None."""
    from conformance.model import FAILING

    config.shard, config.time_budget_s = args.shard, args.time_budget
    if args.shard and args.shard[1] > len(config.losses):
        return (f"error: --shard {args.shard[0]}/{args.shard[1]}: a shard is a set of losses, so N is at most "
                f"the number of losses checked ({len(config.losses)})")
    ids = list(args.case_ids or [])
    if args.rerun_failed:
        from conformance import reports

        try:
            old = reports.read_json(args.rerun_failed)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"error: --rerun-failed: cannot read {args.rerun_failed!r}: {exc}"
        failed = [r for r in old.results if r.status in FAILING and "/shrink/" not in r.case_id]
        if not failed:
            return f"nothing to re-run: {args.rerun_failed} has no failed case"
        for k in ("seed", "max_examples", "oracles", "dtypes", "strict_errors", "run_catalogue",
                  "simulator_max_examples", "dtypes_requested"):
            if k in old.config:
                setattr(config, k, old.config[k])
        wanted = list(dict.fromkeys(r.candidate for r in failed))
        config.candidates = [c for c in config.candidates if c in wanted] if args.candidates else wanted
        ids += [r.case_id for r in failed]
    seeds = set()
    for cid in ids:
        parts = cid.split("/", 2)
        if len(parts) != 3 or parts[0] not in config.losses and parts[0] not in LOSSES:
            return f"error: --case {cid!r}: not a case id (<loss>/catalogue/<entry> or <loss>/fuzz/<seed>-<n>)"
        if parts[1] == "shrink":
            return (f"error: --case {cid!r}: a shrunk case is re-run from its reproducer "
                    "(reproducers/<id>/repro.py in the report directory)")
        if parts[1] == "fuzz":
            seed, _, n = parts[2].partition("-")
            if not (seed.isdigit() and n.isdigit()):
                return f"error: --case {cid!r}: a fuzz id is <loss>/fuzz/<seed>-<n>"
            seeds.add(int(seed))
        elif parts[1] != "catalogue":
            return f"error: --case {cid!r}: not a case id (<loss>/catalogue/<entry> or <loss>/fuzz/<seed>-<n>)"
    if len(seeds) > 1:
        return f"error: --case: fuzz ids of different seeds ({', '.join(map(str, sorted(seeds)))}) need separate runs"
    if seeds:
        config.seed = seeds.pop()
    if ids:
        config.case_ids = list(dict.fromkeys(ids))
        named = {cid.split("/", 1)[0] for cid in ids}
        config.losses = [loss for loss in config.losses if loss in named]
    return None


def cmd_merge(args: argparse.Namespace) -> int:
    from conformance import reports
    from conformance.shard import MergeError, merge

    shards = []
    for d in args.shard_dirs:
        path = d if d.endswith(".json") else os.path.join(d, "report.json")
        try:
            shards.append((os.path.dirname(path) or ".", reports.read_json(path)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"nbxent-conformance: error: cannot read {path!r}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    why = check_report_dir(args.report_dir)
    if why:
        print(f"nbxent-conformance: error: report directory not writable: {why}", file=sys.stderr)
        return EXIT_USAGE
    if any(os.path.abspath(d) == os.path.abspath(args.report_dir) for d, _ in shards):
        print("nbxent-conformance: error: merge: --report-dir must not be one of the shards", file=sys.stderr)
        return EXIT_USAGE
    clean_report_dir(args.report_dir)
    try:
        results = merge(shards, args.report_dir)
    except MergeError as exc:
        print(f"nbxent-conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    paths = reports.write_reports(results, args.report_dir)
    reports.print_summary(results, paths)
    step_summary(paths["markdown"])
    if not results.results:
        return EXIT_USAGE
    return EXIT_FAIL if results.failed else EXIT_PASS


def cmd_list_candidates(args: argparse.Namespace) -> int:
    print(CANDIDATE_HELP)
    print("Built-in candidates (checked when `run` gets no --candidate):")
    for name in BUILTIN_CANDIDATES:
        why = check_candidate_spec(name)
        state = "" if why is None else f"  (unavailable: {why})"
        print(f"  {name}{state}")
    return EXIT_PASS


def cmd_report(args: argparse.Namespace) -> int:
    from conformance import reports

    try:
        results = reports.read_json(args.report_json)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"nbxent-conformance: error: cannot read {args.report_json!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = args.report_dir or os.path.dirname(os.path.abspath(args.report_json))
    why = check_report_dir(out)
    if why:
        print(f"nbxent-conformance: error: report directory not writable: {why}", file=sys.stderr)
        return EXIT_USAGE
    paths = {"junit": reports.write_junit(results, out), "markdown": reports.write_markdown(results, out),
             "html": reports.write_html(results, out)}
    reports.print_summary(results, paths)
    return EXIT_FAIL if results.failed else EXIT_PASS


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nbxent-conformance``; returns the exit status (0 pass, 1 fail, 2 usage/setup)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:                 # --help exits 0, a usage error 2
        return int(exc.code or 0)
    handlers = {"run": cmd_run, "merge": cmd_merge, "list-candidates": cmd_list_candidates, "report": cmd_report,
                "profile": lambda a: __import__("conformance.profile").profile.main(a.candidates, a.json)}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("nbxent-conformance: interrupted", file=sys.stderr)
        return EXIT_USAGE
    except Exception:                         # a harness bug must not read as a conformance verdict
        traceback.print_exc()
        print("nbxent-conformance: internal error (see the traceback above)", file=sys.stderr)
        return EXIT_USAGE
