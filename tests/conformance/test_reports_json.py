"""report.json: strict JSON, versioned, round-trips a RunResults (NaN/inf included)."""
import json
import os
import math

import numpy as np
import pytest

from _reports_data import make_run
from conformance.model import RunResults
from conformance.reports import SCHEMA_VERSION, read_json, write_json
from conformance.reports.json_report import strict


def _reject_constant(name):
    raise AssertionError(f"report.json contains the non-JSON token {name}")


def test_report_json_is_strict_json_with_header(tmp_path):
    path = write_json(make_run(), str(tmp_path))
    text = open(path, encoding="utf-8").read()
    doc = json.loads(text, parse_constant=_reject_constant)   # NaN/Infinity tokens would raise
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["verdict"] == "fail"
    assert doc["summary"]["cells"] == {"fail": 3, "not supported": 1, "pass": 16}
    assert doc["summary"]["statuses"]["crash"] == 3
    assert doc["summary"]["statuses"]["timeout"] == 1
    rows = {(r["candidate"], r["loss"]): r for r in doc["summary"]["rows"]}
    assert rows[("bad", "cross_entropy")]["worst_ulp"] == "nan"
    assert rows[("good", "cross_entropy")]["torch_differs"] == 1
    assert rows[("good", "nll_loss")]["not_supported"] == ["backward"]


def test_non_finite_values_are_strings(tmp_path):
    doc = json.load(open(write_json(make_run(), str(tmp_path)), encoding="utf-8"))
    failing = [r for r in doc["results"] if r["status"] == "fail"]
    first = next(r for r in failing if r["case_id"].endswith("000000"))
    assert first["error"]["worst_got"] == "nan"
    assert first["error"]["max_abs"] == "inf"
    assert first["case"]["kwargs"]["label_smoothing"] == "nan"


def test_round_trip_gives_the_same_run(tmp_path):
    run = make_run()
    back = read_json(write_json(run, str(tmp_path)))
    assert isinstance(back, RunResults)
    assert back.to_dict() == strict(run.to_dict())
    assert back.failed is True
    err = next(r.error for r in back.results if r.status == "fail" and r.case_id.endswith("000000"))
    assert math.isnan(err.worst_got) and math.isinf(err.max_abs)


def test_numpy_scalars_left_in_the_model_are_serialised(tmp_path):
    # An engine may store np.float64 results; to_dict keeps a NaN np.float64 as a float NaN.
    run = make_run(with_failures=False)
    run.results[0].error.max_ulp = np.float64("nan")
    run.results[0].error.worst_got = np.float32(-np.inf)
    run.config["extra"] = np.array([1.5, np.inf])
    doc = json.load(open(write_json(run, str(tmp_path)), encoding="utf-8"), parse_constant=_reject_constant)
    assert doc["results"][0]["error"]["max_ulp"] == "nan"
    assert doc["results"][0]["error"]["worst_got"] == "-inf"
    assert doc["config"]["extra"] == [1.5, "inf"]
    assert doc["verdict"] == "pass"


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match="schema_version"):
        read_json(str(path))


def test_every_field_is_documented_in_the_schema(tmp_path):
    doc = json.load(open(write_json(make_run(), str(tmp_path)), encoding="utf-8"))
    docs = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "conformance.md"), encoding="utf-8").read()
    schema = docs.split("### report.json schema")[1].split("```text")[1].split("```")[0]
    keys = set(doc) | set(doc["summary"]) | set(doc["summary"]["rows"][0]) | set(doc["candidates"][0])
    keys |= set(doc["results"][0]) | set(doc["results"][0]["error"]) | set(doc["findings"][0])
    missing = sorted(k for k in keys if f'"{k}"' not in schema)
    assert not missing, f"fields of report.json missing from the schema in docs/conformance.md: {missing}"
