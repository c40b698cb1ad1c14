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
        "reference; momentum 0.1 (weight of the new batch statistic) and epsilon 1e-5 unless "
        "the case says native defaults.",
        f"- **Trajectory**: MLP {mlp} ReLU with BN before each activation, canonical init, "
        f"`{ds.get('name')}` ({ds.get('train')} train samples, {ds.get('source', '')}), "
        f"{t['epochs']} single-batch steps of {t['optimizer']} lr {t['lr']} momentum "
        f"{t['momentum']}, batch {t['batch_size']}.",
    ]


def header(ctx: ReportContext) -> str:
    """What ran, on which data and settings, where, and how long each cell took."""
    run, cells = ctx.run, _cells(ctx)
    lines = [
        f"# {ctx.suite.name}: {ctx.suite.description}",
        "",
        f"Run `{run['run_id']}`, status **{run['status']}**, {len(ctx.cells)} cells stored.",
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
    return texts.CONVENTIONS + "\n\n" + _table(rows, headers)


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
            rows.append([case["name"], an.label(cell), *values, case["verdict"], note])
    return rows


def errors(ctx: ReportContext) -> str:
    """Per case and backend: relative (absolute) errors of all six quantities, and verdicts."""
    cells = _cells(ctx)
    if not cells:
        return ""
    headers = ["case", "backend", *(SHORT.get(q, q) for q in QUANTITIES), "verdict", "note"]
    parts = [
        texts.ERRORS,
        _verdicts(ctx, cells),
    ]
    for group, title in GROUPS.items():
        parts.append(f"### {title}\n\n" + _table(_error_rows(cells, group), headers))
    ctx.data["errors"] = {  # raw outputs stay in the cells' results, not the findings
        an.label(c): [{k: v for k, v in x.items() if k != "raw"} for x in c["result"]["cases"]]
        for c in cells
    }
    parts.append(_growth(ctx, cells))
    parts.append(_formulas(ctx, cells))
    return "\n\n".join(parts)


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
    """Header and rows of the per-step table; between-backend columns only with two or more."""
    pairs = bool(div["steps"])
    headers = ["step", *(f"loss {k}" for k in losses)]
    headers += ["max Δ loss", "params Δ (layer)", "running stats Δ (layer)"] if pairs else []
    headers += [f"{k} vs float64 (layer)" for k in refs]
    rows = []
    for step in range(len(next(iter(refs.values()))["per_step"])):
        row = [str(step), *(f"{an.num(v[step - 1]):.7f}" if step else "-" for v in losses.values())]
        if pairs:
            d = div["steps"][step]
            row += [
                _g(d["loss_abs"]) if step else "-",
                f"{_g(d['params']['rel'])} {d['params']['group']}",
                f"{_g(d['stats']['rel'])} {d['stats']['group']}",
            ]
        row += [
            f"{_g(r['per_step'][step]['rel'])} {r['per_step'][step]['group']}"
            for r in refs.values()
        ]
        rows.append(row)
    return headers, rows


def _over(first: dict[str, Any] | None, what: str, steps: int, said: set[int] | None = None) -> str:
    """One note on when a divergence first passed the tolerance; explains a ReLU gate once."""
    if first is None:
        return f"{what}: within {an.TRAJECTORY_TOL:g} for all {steps} steps."
    pair = f", {first['pair']}" if first.get("pair") else ""
    text = (
        f"{what}: first over {an.TRAJECTORY_TOL:g} at step {first['step']} "
        f"({_g(first['rel'])}), led by `{first['group']}`{pair}."
    )
    gate = an.num(first.get("min_relu_input"))
    if gate < an.RELU_RESOLUTION and said is not None:
        explained = first["step"] in said
        said.add(first["step"])
        text += (
            " Same near-zero ReLU input."
            if explained
            else texts.RELU_GATE.format(gate=gate, layer=first["relu_layer"])
        )
    return text


def _trajectory_notes(ctx: ReportContext, div: dict[str, Any], refs: dict[str, Any]) -> str:
    """When each divergence first passed the tolerance (with the ReLU-gate explanation once),
    and which backends have no trajectory."""
    steps, said = len(next(iter(refs.values()))["per_step"]) - 1, set[int]()
    gates = next(iter(refs.values()))["per_step"]  # every backend saw the same batches
    notes = []
    for key, what in (("params", "Trainable parameters"), ("stats", "Running statistics")):
        first = div.get(f"first_{key}_over") if div["steps"] else None
        gate = {k: v for k, v in gates[first["step"]].items() if "relu" in k} if first else {}
        if div["steps"]:
            notes.append(
                _over(first and {**first, **gate}, f"{what} between backends", steps, said)
            )
    notes += [_over(r["first_over"], f"`{k}` vs float64", steps, said) for k, r in refs.items()]
    for cell in _cells(ctx):
        error = cell["result"].get("trajectory", {}).get("error")
        if error:
            notes.append(f"`{an.label(cell)}`: no trajectory ({error}).")
    if div.get("missing") and len(refs) > 1:
        notes.append(f"No per-step parameter file for {', '.join(div['missing'])}.")
    return "\n".join(f"- {n}" for n in notes)


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
        "tolerance": an.TRAJECTORY_TOL,
        "divergence": div,
        "versus_reference": refs,
        "losses": losses,
        "npz": {an.label(c): c["result"]["trajectory"]["npz"] for c in cells},
    }
    per_step = {k: v["per_step"] for k, v in refs.items()}
    image = divergence_plot(ctx, div, per_step)
    headers, rows = _step_rows(div, losses, refs)
    return (
        texts.TRAJECTORY.format(tol=an.TRAJECTORY_TOL)
        + "\n\n"
        + _trajectory_notes(ctx, div, refs)
        + "\n\n"
        + _table(rows, headers)
        + (f"\n\n![divergence]({image})" if image else "")
    )


def summary(ctx: ReportContext) -> str:
    """What differs between the frameworks and why, in plain language, from the measurements."""
    from harness.numerics.summary import summary_lines

    lines = summary_lines(_cells(ctx))
    ctx.data["summary"] = lines
    return "## Summary\n\n" + "\n".join(f"- {line}" for line in lines) if lines else ""
