"""The speed targets of ``make bench``, as data, and the check printed after the table.

Each target names a case key, a measured quantity of its row and a bound; ratios are
torch's time over nbxent's from the same interleaved run, fractions the roof time over
nbxent's (benchmarks/run.py). The first-call targets read the fresh-process probes:
the first forward and the first fused call, each on its own, per loss and dtype.
"""
from __future__ import annotations

#: (case key, row field, bound, what the bound is)
ROW_TARGETS = [
    ("ce-fwd-8192x32000-float32", "compiled_ratio", 1.3, ">= 1.3x torch.compile"),
    ("ce-fwd-8192x32000-float32", "floor_fraction", 0.85, ">= 85% of the bandwidth floor"),
    ("ce-fwd-4096x128256-float32", "compiled_ratio", 1.3, ">= 1.3x torch.compile"),
    ("ce-fwd-4096x128256-float32", "floor_fraction", 0.85, ">= 85% of the bandwidth floor"),
    ("ce-fwd+bwd-8192x32000-float32", "floor_fraction", 0.85, ">= 85% of the bandwidth floor"),
    ("ce-fwd+bwd-4096x128256-float32", "floor_fraction", 0.85, ">= 85% of the bandwidth floor"),
    ("ce-fwd+bwd-8192x32000-float64", "floor_fraction", 0.85, ">= 85% of the bandwidth floor"),
    ("ce-fwd-8x21x256x256-float32", "compiled_ratio", 1.3, ">= 1.3x torch.compile"),
    ("ce-fwd-8x21x256x256-float32", "floor_fraction", 0.6, ">= 60% of the bandwidth floor"),
    ("ce-fwd+bwd-8x21x256x256-float32", "compiled_ratio", 2.5, ">= 2.5x torch.compile"),
    ("ce-fwd+bwd-8x21x256x256-float32", "floor_fraction", 0.6, ">= 60% of the bandwidth floor"),
    ("bce-fwd+bwd-8192x4096-float32", "compiled_ratio", 2.0, ">= 2x torch.compile"),
    ("bce-fwd+bwd-8192x4096-float32", "floor_fraction", 0.7, ">= 70% of the bandwidth floor"),
    ("bcewl-fwd+bwd-8192x4096-float32", "compiled_ratio", 2.0, ">= 2x torch.compile"),
    ("bcewl-fwd+bwd-8192x4096-float32", "floor_fraction", 0.7, ">= 70% of the bandwidth floor"),
    ("nll-fwd+bwd-8192x4096-float32", "eager_ratio", 4.0, ">= 4x torch eager"),
    ("ce-fwd-1024x1000-float32", "best_ratio", 1.5, ">= 1.5x the faster torch"),
    ("ce-fwd+bwd-32x10-float32", "eager_ratio", 10.0, ">= 10x torch eager fwd+bwd"),
]

#: first call in a fresh process: (probe, bound in seconds)
FIRST_CALL_TARGETS = [("nbxent_cold", 2.0), ("nbxent_warm", 0.3)]


def _row_lines(rows):
    by_key = {r["case"]: r for r in rows}
    out = []
    for key, fld, bound, text in ROW_TARGETS:
        r = by_key.get(key)
        v = None if r is None else r.get(fld)
        if r is None:
            verdict, shown = "not run", "-"
        elif v is None:
            verdict, shown = "no value", "-"
        else:
            pct = fld.endswith("fraction")
            shown = f"{100 * v:.0f}%" if pct else f"{v:.2f}x"
            verdict = "met" if v >= bound else "NOT MET"
            if verdict != "met" and r.get("binds"):
                verdict += f" (binds: {r['binds']}, %mem {100 * (r['floor_fraction'] or 0):.0f}%," \
                           f" %exp {100 * (r['roof_fraction'] or 0):.0f}%)"
        out.append({"case": key, "target": text, "value": v, "shown": shown, "verdict": verdict})
    return out


def _first_lines(first):
    out = []
    for row in first or []:
        for probe, bound in FIRST_CALL_TARGETS:
            res = row[probe]
            if "error" in res:
                out.append({"case": f"{row['loss']} {row['dtype']} {probe}", "target": f"<= {bound} s",
                            "value": None, "shown": "-", "verdict": res["error"]})
                continue
            worst = max(v for k, v in res.items() if k in ("fwd", "fwd+bwd") and v is not None)
            out.append({"case": f"{row['loss']} {row['dtype']} first call ({probe[7:]})",
                        "target": f"<= {bound} s (fwd and fused each)", "value": worst,
                        "shown": f"{worst:.2f} s", "verdict": "met" if worst <= bound else "NOT MET"})
    return out


def report(rows, first):
    """Print one line per target; returns them as dicts."""
    lines = _row_lines(rows) + _first_lines(first)
    print("\nspeed targets (same run):")
    for ln in lines:
        print(f"  {ln['case']:40} {ln['target']:38} {ln['shown']:>8}  {ln['verdict']}")
    return lines
