"""Report sections of bn-numerics: conventions, error tables, cross-backend and trajectory.

Every number printed comes from the stored cells (measured in the workers) and is also put in
``ctx.data`` so results.json carries it under ``findings``. Sections are listed in the suite as
``"harness.report.numerics:<name>"``.
"""

from __future__ import annotations

import math
from typing import Any

from tabulate import tabulate

from harness.numerics import analysis as an
from harness.numerics import conventions as cv
from harness.numerics import texts
from harness.numerics.cases import GROUPS
from harness.numerics.reference import QUANTITIES
from harness.report.context import ReportContext
from harness.report.numerics_plots import divergence_plot, ratio_plot
from harness.report.sections import data_identity, wall_time
from harness.specs import BN_EPSILON, BN_MOMENTUM

SHORT = {"running_mean": "run. mean", "running_var": "run. var"}


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _g(value: Any, fmt: str = ".2e") -> str:
    value = an.num(value)
    return "NaN" if math.isnan(value) else format(value, fmt)


def _cells(ctx: ReportContext) -> list[dict[str, Any]]:
    return an.numerics_cells(ctx.cells)


def _what_ran(cell: dict[str, Any]) -> list[str]:
    result, spec = cell["result"], cell["spec"]
    ds, t = result.get("dataset", {}), spec["train"]
    sizes = "-".join(str(s) for s in spec["model"]["hidden_sizes"])
    mlp = f"{ds.get('input_size')}-{sizes}-{ds.get('num_classes')}"
    return [
        f"- **BN cases**: {len(result['cases'])} per backend, each the backend's own BN layer "
        "on seeded NumPy inputs (rounded to the case dtype), compared with a float64 NumPy "
        f"reference; momentum {BN_MOMENTUM} (weight of the new batch statistic) and epsilon "
        f"{BN_EPSILON:.0e}".replace("e-0", "e-") + " unless the case says native defaults.",
        f"- **Trajectory**: MLP {mlp} ReLU with BN before each activation, canonical init, "
        f"`{ds.get('name')}` ({ds.get('train')} train samples, {data_identity(ds)}), "
        f"{t['epochs']} single-batch steps of {t['optimizer']} lr {t['lr']} momentum "
        f"{t['momentum']}, batch {t['batch_size']}.",
    ]


def header(ctx: ReportContext) -> str:
    """What ran, on which data and settings, where, and how long each cell took."""
    run, cells = ctx.run, _cells(ctx)
    lines = [
        f"# {ctx.suite.name}: {ctx.suite.description}",
        "",
        f"Run `{run['run_id']}`, status **{run['status']}**, {len(ctx.cells)} cells stored"
        f"{wall_time(run)}.",
        "",
        *(_what_ran(cells[0]) if cells else []),
    ]
    settings, env = run["settings"], run["env"]
    lines += [
        f"- **Backends**: {', '.join(settings.get('backends', []))}; devices "
        f"{', '.join(settings.get('devices', []))}; command `{settings.get('command', '')}`.",
        f"- **Environment**: Python {env.get('python')}, {env.get('cpu')}, {env.get('cores')} "
        f"cores, {env.get('threads')} threads per worker.",
    ]
    for cell in ctx.cells:
        versions = ", ".join(f"{k} {v}" for k, v in cell["result"].get("versions", {}).items())
        times = cell["result"].get("timings", {})
        split = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in times.items())
        wall = an.num(cell["result"].get("wall_s"))
        lines.append(
            f"  - `{an.label(cell)}` ({cell['status']}, {wall:.1f} s: {split}): {versions}"
        )
    return "\n".join(lines)


def conventions(ctx: ReportContext) -> str:
    """The measured conventions of every backend's BN layer."""
    rows, data = [], {}
    for cell in _cells(ctx):
        p = cell["result"]["conventions"]
        eps = p["epsilon"]
        data[an.label(cell)] = p
        rows.append(
            [
                an.label(cell),
                cv.asked_text(p["core"], p["momentum_asked"]),
                p["native"].get("label", p["native"].get("error", "")),
                cv.variance_text(p["core"]),
                f"{_g(eps['native_eval'], '.4g')} / {_g(eps['native_train'], '.4g')}",
                f"{_g(eps['core_eval'], '.4g')} / {_g(eps['core_train'], '.4g')}",
                p["batch1"]["label"],
            ]
        )
    ctx.data["conventions"] = data
    headers = [
        "backend",
        "new-stat weight, asked 0.1",
        "native default momentum",
        "variance fed to the running average",
        "native epsilon (eval / train)",
        "epsilon, asked 1e-5 (eval / train)",
        "batch size 1, training mode",
    ]
    return texts.CONVENTIONS + "\n\n" + _table(rows, headers) + _variant_conventions(ctx)


def _variant_conventions(ctx: ReportContext) -> str:
    """The running-variance rule of every layer variant a backend offers, measured."""
    lines = [
        f"- `{an.label(c)}` {variant}: new-stat weight {cv.asked_text(p, 0.1)}, variance fed "
        f"{cv.variance_text(p)}"
        for c in _cells(ctx)
        for variant, p in c["result"]["conventions"].get("variants", {}).items()
    ]
    return ("\n\n" + texts.VARIANTS + "\n\n" + "\n".join(lines)) if lines else ""


def _error_rows(cells: list[dict[str, Any]], group: str) -> list[list[str]]:
    rows = []
    for cell in cells:
        for case in (c for c in cell["result"]["cases"] if c["group"] == group):
            errs = case["errors"]
            values = [
                f"{_g(errs[q]['rel'])} ({_g(errs[q]['abs'])})" if q in errs else "-"
                for q in QUANTITIES
            ]
            note = case["error"][:70] if case["error"] else ""
            ratio = _g(case.get("max_ratio"), ".2f")
            rows.append([case["name"], an.label(cell), *values, ratio, case["verdict"], note])
    return rows


def errors(ctx: ReportContext) -> str:
    """Per case and backend: relative (absolute) errors of all six quantities, and verdicts."""
    cells = _cells(ctx)
    if not cells:
        return ""
    short = [SHORT.get(q, q) for q in QUANTITIES]
    headers = ["case", "backend", *short, "worst err/tol", "verdict", "note"]
    parts = [texts.ERRORS, _verdicts(ctx, cells), _tolerance_table(ctx, cells)]
    for group, title in GROUPS.items():
        parts.append(f"### {title}\n\n" + _table(_error_rows(cells, group), headers))
    ctx.data["errors"] = {  # raw outputs stay in the cells' results, not the findings
        an.label(c): [{k: v for k, v in x.items() if k != "raw"} for x in c["result"]["cases"]]
        for c in cells
    }
    parts.append(_growth(ctx, cells))
    parts.append(_formulas(ctx, cells))
    return "\n\n".join(parts)


def _tolerance_table(ctx: ReportContext, cells: list[dict[str, Any]]) -> str:
    """Per float32 case: each quantity's derived tolerance and the worst measured error over
    backends as a fraction of it (the ratio column: > 1 fails a well-conditioned case)."""
    per_case: dict[str, dict[str, Any]] = {}
    for cell in cells:
        for case in cell["result"]["cases"]:
            if case["dtype"] != "float32" or case["error"]:
                continue
            row = per_case.setdefault(case["name"], {"wc": case["well_conditioned"], "q": {}})
            for q, e in case["errors"].items():
                old = row["q"].get(q, {"tol": e.get("tol"), "ratio": -1.0})
                if an.num(e.get("ratio")) > an.num(old["ratio"]):
                    old = {"tol": e.get("tol"), "ratio": e.get("ratio"), "by": an.label(cell)}
                row["q"][q] = old
    ctx.data["tolerances"] = per_case
    rows = [
        [name, "yes" if r["wc"] else "finding", *(_tol_cell(r["q"].get(q)) for q in QUANTITIES)]
        for name, r in per_case.items()
    ]
    headers = ["case", "held to it", *(f"{SHORT.get(q, q)}: tol (ratio)" for q in QUANTITIES)]
    return texts.TOLERANCES + "\n\n" + _table(rows, headers)


def _tol_cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    return f"{_g(entry['tol'], '.1e')} ({_g(entry['ratio'], '.3f')})"


def _formulas(ctx: ReportContext, cells: list[dict[str, Any]]) -> str:
    """Mapped vs native-defaults errors over the ratio sweep, with each one's variance formula."""
    sweeps = {an.label(c): an.formula_sweep(c) for c in cells}
    ctx.data["variance_formula"] = sweeps
    ratios = next(iter(sweeps.values()))["mapped"].keys()
    rows = []
    for name, s in sweeps.items():
        for mode in ("mapped", "native"):
            formula = s["formula"].get(mode, "not reported")
            rows.append([name, mode, formula, *(_g(s[mode].get(r)) for r in ratios)])
    headers = ["backend", "layer", "variance formula", *(f"ratio {r}" for r in ratios)]
    return texts.FORMULAS + "\n\n" + _table(rows, headers)


def _verdicts(ctx: ReportContext, cells: list[dict[str, Any]]) -> str:
    kinds = ("pass", "fail", "finding", "unsupported")
    counts = {
        an.label(c): {k: sum(x["verdict"] == k for x in c["result"]["cases"]) for k in kinds}
        for c in cells
    }
    ctx.data["verdicts"] = counts
    rows = [[name, *(str(v[k]) for k in kinds)] for name, v in counts.items()]
    return _table(rows, ["backend", *kinds])


def _growth(ctx: ReportContext, cells: list[dict[str, Any]]) -> str:
    image = ratio_plot(ctx, cells)
    fits = {an.label(c): an.growth(c) for c in cells}
    ctx.data["growth"] = fits
    ratios = list(next(iter(fits.values()))["errors"])
    rows = [
        [n, *(_g(f["errors"][r]) for r in ratios), _g(f["exponent"], ".2f")]
        for n, f in fits.items()
    ]
    return (
        texts.GROWTH
        + "\n\n"
        + _table(rows, ["backend", *(f"ratio {r}" for r in ratios), "k"])
        + (f"\n\n![error vs mean/std]({image})" if image else "")
    )


def cross_backend(ctx: ReportContext) -> str:
    """Backends against each other on the cases whose raw outputs were kept."""
    rows = an.cross_backend(_cells(ctx))
    ctx.data["cross_backend"] = rows
    if not rows:
        return ""
    table = [[r["case"], r["pair"], *(_g(r.get(q)) for q in QUANTITIES)] for r in rows]
    return (
        texts.CROSS_BACKEND
        + "\n\n"
        + _table(table, ["case", "pair", *(SHORT.get(q, q) for q in QUANTITIES)])
    )


def _step_rows(div: dict[str, Any], losses: dict[str, list[Any]], refs: dict[str, Any]) -> Any:
    """Header and rows of the per-step table at the steps the backends stored (plus every step
    a backend first went over); between-backend columns only with two or more."""
    pairs = {r["step"]: r for r in div["steps"]}
    headers = ["step", *(f"loss {k}" for k in losses)]
    headers += ["max Δ loss", "params Δ / tol (layer)", "stats Δ / tol (layer)"] if pairs else []
    headers += [f"{k} vs float64: Δ / tol (layer)" for k in refs]
    shown = set(pairs) | {r["first_over"]["step"] for r in refs.values() if r["first_over"]}
    rows = []
    for step in sorted(shown) or range(len(next(iter(refs.values()))["per_step"])):
        row = [str(step), *(f"{an.num(v[step - 1]):.7f}" if step else "-" for v in losses.values())]
        if pairs:
            d = pairs.get(step)
            row += (
                [
                    _g(d["loss_abs"]) if step else "-",
                    f"{_g(d['params']['rel'])} / {_g(d['params']['tol'])} {d['params']['group']}",
                    f"{_g(d['stats']['rel'])} / {_g(d['stats']['tol'])} {d['stats']['group']}",
                ]
                if d
                else ["-", "-", "-"]
            )
        for r in refs.values():
            p = r["per_step"][step] if step < len(r["per_step"]) else None
            row.append(f"{_g(p['rel'])} / {_g(p['tol'])} {p['group']}" if p else "-")
        rows.append(row)
    return headers, rows


def _over(first: dict[str, Any] | None, what: str, steps: int) -> str:
    """One note on when a divergence first passed its derived tolerance, and, against float64,
    the ReLU gates the worker found flipped at that step."""
    if first is None:
        return f"{what}: within the derived tolerance for all {steps} steps."
    pair = f", {first['pair']}" if first.get("pair") else ""
    text = (
        f"{what}: first over the derived tolerance at step {first['step']} "
        f"({_g(first['rel'])} against {_g(first['tol'])}), led by `{first['group']}`{pair}."
    )
    flips = first.get("flips")
    if flips and "error" not in flips:
        text += texts.RELU_FLIPS.format(
            steps=", ".join(flips["steps"]),
            flipped=flips["flipped"],
            near=flips["near_zero"],
            per_layer="; ".join(
                f"step {step}, hidden layer {x['layer']}: {x['flipped']} ({x['near_zero']} "
                f"within {x['bound']:.1e} of zero; largest |z64| flipped {x['flipped_abs']:.1e})"
                for step, found in flips["steps"].items()
                for x in found["layers"]
                if x["flipped"]
            )
            or "none",
            verdict=texts.RELU_CAUSE if flips["relu_cause"] else texts.RELU_NOT_CAUSE,
        )
    elif flips:
        text += f" (no ReLU trace: {flips['error'][:80]})"
    return text


def _trajectory_notes(ctx: ReportContext, div: dict[str, Any], refs: dict[str, Any]) -> str:
    """When each divergence first passed its tolerance (with the ReLU-gate count against
    float64), and which backends have no trajectory."""
    steps = len(next(iter(refs.values()))["per_step"]) - 1
    notes = []
    for key, what in (("params", "Trainable parameters"), ("stats", "Running statistics")):
        if div["steps"]:
            first = div.get(f"first_{key}_over")
            notes.append(_over(first, f"{what} between backends (stored steps)", steps))
    notes += [_over(r["first_over"], f"`{k}` vs float64", steps) for k, r in refs.items()]
    for cell in _cells(ctx):
        error = cell["result"].get("trajectory", {}).get("error")
        if error:
            notes.append(f"`{an.label(cell)}`: no trajectory ({error}).")
    if div.get("missing") and len(refs) > 1:
        notes.append(f"No snapshot file for {', '.join(div['missing'])}.")
    return "\n".join(f"- {n}" for n in notes)


def _eval_table(ctx: ReportContext, cells: list[dict[str, Any]]) -> str:
    """Eval-mode logits of backends whose running-variance conventions differ, per step."""
    rows = an.eval_effect(cells)
    ctx.data["eval_effect"] = rows
    if not rows:
        return ""
    table = [
        [str(r["step"]), r["pair"], _g(r["logits"]), _g(r["given_var"]), _g(r["scale"], ".3g")]
        for r in rows
    ]
    headers = [
        "step",
        "pair",
        "max Δ eval logits",
        "same, given the other's running var",
        "max |logit|",
    ]
    return texts.EVAL_EFFECT + "\n\n" + _table(table, headers)


def trajectory(ctx: ReportContext) -> str:
    """Per-step divergence between backends and against float64, with the plot."""
    cells = [c for c in _cells(ctx) if c["result"].get("trajectory", {}).get("losses")]
    if not cells:
        return ""
    div = an.divergence(cells)
    refs = {an.label(c): an.versus_reference(c) for c in cells}
    losses = {an.label(c): c["result"]["trajectory"]["losses"] for c in cells}
    losses["float64"] = cells[0]["result"]["trajectory"]["ref_losses"]
    ctx.data["trajectory"] = {
        "tolerance": texts.TRAJECTORY_TOLERANCE,
        "divergence": div,
        "versus_reference": {k: {**v, "per_step": v["per_step"][-1:]} for k, v in refs.items()},
        "first_over": {k: v["first_over"] for k, v in refs.items()},
        "losses": losses,
        "npz": {an.label(c): c["result"]["trajectory"]["npz"] for c in cells},
    }
    per_step = {k: v["per_step"] for k, v in refs.items()}
    image = divergence_plot(ctx, div, per_step)
    headers, rows = _step_rows(div, losses, refs)
    return "\n\n".join(
        part
        for part in (
            texts.TRAJECTORY,
            _trajectory_notes(ctx, div, refs),
            _table(rows, headers),
            f"![divergence]({image})" if image else "",
            _eval_table(ctx, cells),
        )
        if part
    )


def summary(ctx: ReportContext) -> str:
    """What differs between the frameworks and why, in plain language, from the measurements."""
    from harness.numerics.summary import summary_lines

    lines = summary_lines(_cells(ctx))
    ctx.data["summary"] = lines
    return "## Summary\n\n" + "\n".join(f"- {line}" for line in lines) if lines else ""
