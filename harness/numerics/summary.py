"""The plain-language summary of bn-numerics, one sentence per finding, built from measurements.

Each function reads the stored cells and returns one line (or ``""`` when it has nothing to
say); no number or convention in a line is typed in, all come from the cells.
"""

from __future__ import annotations

import math
from typing import Any

from harness.numerics import analysis as an
from harness.numerics.cases import UNIT_ROUNDOFF, tolerance

Cell = dict[str, Any]


def _per(cells: list[Cell], text: Any) -> str:
    return ", ".join(f"{an.label(c)} {text(c)}" for c in cells)


def _momentum(cells: list[Cell]) -> str:
    probes = {an.label(c): c["result"]["conventions"] for c in cells}
    asked = [p["core"].get("weight", math.nan) for p in probes.values()]
    wrong = [k for k, p in probes.items() if not abs(p["core"].get("weight", 9) - 0.1) <= 1e-4]
    first = (
        "asked for a new-stat weight of 0.1, every backend applied it "
        f"({min(asked):.4f}..{max(asked):.4f}): the translation is right"
        if not wrong
        else f"asked for 0.1, {', '.join(wrong)} applied something else"
    )
    native = [p["native"].get("weight", math.nan) for p in probes.values()]
    spread = max(native) / min(native) if min(native) > 0 else math.nan
    labels = _per(cells, lambda c: c["result"]["conventions"]["native"].get("label", "?"))
    faster = (
        f"; left at their defaults, the running averages forget {spread:.3g}x faster in "
        "one framework than another"
        if spread > 1.01
        else ""
    )
    return f"**Momentum**: {first}. Native defaults: {labels}{faster}."


def _variance(cells: list[Cell]) -> str:
    def fed(c: Cell) -> str:
        v = c["result"]["conventions"]["core"].get("variance", {})
        return f"{v.get('fed', '?')} (x{v.get('ratio_to_biased', math.nan):.4f})"

    n = cells[0]["result"]["conventions"]["core"].get("variance", {}).get("n", 0)
    return (
        f"**Running variance**: the batch variance fed to the running average is "
        f"{_per(cells, fed)} at batch {n} (unbiased = n/(n-1) = {n / max(n - 1, 1):.4f} x the "
        "biased one). The layers normalize with the biased variance in training either way; "
        "only the running estimate, hence eval mode, differs."
    )


def _epsilon(cells: list[Cell]) -> str:
    eps = {an.label(c): an.num(c["result"]["conventions"]["epsilon"]["native_eval"]) for c in cells}
    asked = [an.num(c["result"]["conventions"]["epsilon"]["core_eval"]) for c in cells]
    lo, hi = min(eps.values()), max(eps.values())
    shrink = 1 - math.sqrt((0.01 + lo) / (0.01 + hi))
    text = ", ".join(f"{k} {v:.3g}" for k, v in eps.items())
    effect = (
        f" At the defaults a feature of variance 0.01 comes out {shrink:.1%} smaller in "
        "the largest-epsilon framework."
        if hi > 1.01 * lo
        else ""
    )
    return (
        f"**Epsilon**: native defaults {text} (solved from eval-mode outputs); asked for "
        f"1e-5, the backends used {min(asked):.4g}..{max(asked):.4g}.{effect}"
    )


def _batch_one(cells: list[Cell]) -> str:
    text = "; ".join(
        f"{an.label(c)}: {c['result']['conventions']['batch1']['label'][:110]}" for c in cells
    )
    return f"**Batch size 1 in training**: {text}."


def _cases(cells: list[Cell], keep: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(an.label(c), x) for c in cells for x in c["result"]["cases"] if keep(x)]


def _nan_high(value: Any) -> float:
    """Sort key that puts a NaN (a failure) above every number."""
    number = an.num(value)
    return math.inf if math.isnan(number) else number


def _float32(cells: list[Cell]) -> str:
    cases = _cases(cells, lambda x: x["well_conditioned"] and x["dtype"] == "float32")
    passed = [x for _, x in cases if x["verdict"] == "pass"]
    name, worst = max(cases, key=lambda p: _nan_high(p[1].get("max_ratio")))
    errs = worst["errors"]
    quantity = max(errs, key=lambda q: _nan_high(errs[q].get("ratio")), default="?")
    failed = ", ".join(f"{n} `{x['name']}`" for n, x in cases if x["verdict"] != "pass")
    top = errs.get(quantity, {})
    return (
        f"**Well-conditioned float32**: {len(passed)} of {len(cases)} case runs pass "
        "(each quantity against its derived tolerance C·u·n_eff·κ); the closest to its "
        f"tolerance is {an.num(top.get('rel')):.2g} against {an.num(top.get('tol')):.2g} "
        f"({an.num(top.get('ratio')):.2f} of it; {name}, `{worst['name']}`, {quantity})"
        + (f"; failing: {failed}." if failed else ".")
    )


GROWTH_KINDS = (
    (0.5, "flat (no cancellation: the mean is not rounded to float32)"),
    (1.5, "linear (the float32 mean is off by about |mean| u and centring passes that on)"),
    (math.inf, "quadratic or worse (a one-pass variance E[x^2] - E[x]^2 cancels)"),
)


def _growth(cells: list[Cell]) -> str:
    fits = {an.label(c): an.growth(c) for c in cells}
    kinds: dict[str, list[str]] = {}
    for name, fit in fits.items():
        k = fit["exponent"]
        kind = next((text for bound, text in GROWTH_KINDS if k < bound), "not measured")
        kinds.setdefault(kind, []).append(f"{name} k = {k:.2f}")
    growth = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items())
    top = max(fits.items(), key=lambda kv: an.num(kv[1]["errors"].get("10000")))
    return (
        f"**Ill-conditioned inputs**: the error grows like (|mean|/std)^k, {growth}; at "
        f"|mean|/std = 1e4 it reaches {an.num(top[1]['errors'].get('10000')):.2g} ({top[0]})."
    )


def _native_ill(cells: list[Cell]) -> str:
    """The native-defaults case at |mean|/std 1e4: each framework's own variance formula."""
    runs = _cases(cells, lambda x: x["native"] and x["ratio"] >= 1e4 and not x["error"])
    if not runs:
        return ""
    worst_name, worst = max(runs, key=lambda p: _nan_high(p[1]["max_rel"]))
    text = ", ".join(f"{n} {an.num(x['max_rel']):.2g}" for n, x in runs)
    blown = an.num(worst["max_rel"]) > 100 * min(an.num(x["max_rel"]) for _, x in runs)
    why = (
        f"; {worst_name} is far off, the signature of a one-pass batch variance "
        "E[x^2] - E[x]^2 at its defaults (Flax's default is `use_fast_variance=True`), which "
        "cancels catastrophically when the mean dwarfs the std"
        if blown
        else ""
    )
    return f"**Native defaults at |mean|/std = 1e4** (largest relative error): {text}{why}."


def _half(cells: list[Cell]) -> str:
    parts = []
    for dtype in ("float16", "bfloat16"):
        runs = _cases(cells, lambda x, t=dtype: x["dtype"] == t)  # type: ignore[misc]
        u = UNIT_ROUNDOFF[dtype]
        done = [
            f"{n} {an.num(x['max_rel']):.2g} ({an.num(x['max_rel']) / u:.1f} u, stats in "
            f"{'float32' if x['errors'].get('running_mean', {}).get('rel', 1) < 1e-5 else dtype})"
            for n, x in runs
            if not x["error"]
        ]
        refused = [n for n, x in runs if x["error"]]
        parts.append(
            f"{dtype} worst errors {', '.join(done) or 'none'}"
            + (f", unsupported on {', '.join(refused)}" if refused else "")
        )
    return (
        f"**Half precision** (tolerance {tolerance('float16'):.2g} / "
        f"{tolerance('bfloat16'):.2g}): " + "; ".join(parts) + "."
    )


def _tiny_batch(cells: list[Cell]) -> str:
    two = _cases(cells, lambda x: x["name"] == "batch 2" and "grad_x" in x["errors"])
    text = ", ".join(f"{n} {an.num(x['errors']['grad_x']['rel']):.2g}" for n, x in two)
    return (
        f"**Batch size 2**: grad_x relative errors {text}. With two samples the normalized "
        "values are +-1 and grad_x cancels to almost zero (only epsilon keeps it nonzero), so "
        "float32 rounding is large relative to it."
        if two
        else ""
    )


def _flip_text(first: dict[str, Any]) -> str:
    """Why the first step over tolerance diverged, when the worker found ReLU gates flipped."""
    flips = first.get("flips") or {}
    if flips.get("relu_cause"):
        at = ", ".join(str(s) for s in flips.get("at", []))
        return (
            f": {flips['flipped']} ReLU input(s) changed sign against float64 at step {at}, all "
            "within float32's error bound of zero: a gate rounding decides, not a framework "
            "difference"
        )
    if flips.get("flipped"):
        return f" ({flips['flipped']} ReLU sign changes, {flips['near_zero']} of them near zero)"
    return ""


def _versus_float64(cells: list[Cell]) -> str:
    refs = {an.label(c): an.versus_reference(c) for c in cells}
    worst = max(
        (max(p["rel"] for p in r["per_step"]) for r in refs.values() if r["per_step"]),
        default=math.nan,
    )
    over = {k: r["first_over"] for k, r in refs.items() if r["first_over"]}
    if not over:
        return (
            f"every backend stays within its derived tolerance of float64 (drift up to {worst:.2g})"
        )
    name, first = min(over.items(), key=lambda kv: kv[1]["step"])
    return (
        f"against float64 the parameters drift up to {worst:.2g}, first over the derived "
        f"tolerance at step {first['step']} ({name}, `{first['group']}`, "
        f"{an.num(first['rel']):.2g} against {an.num(first['tol']):.2g})" + _flip_text(first)
    )


def _trajectory(cells: list[Cell]) -> str:
    div = an.divergence(cells)
    text = f"**Trajectory**: {_versus_float64(cells)}"
    rows = div.get("steps", [])
    if rows:
        last, first = rows[-1], div.get("first_params_over")
        text += (
            f"; between backends, after {last['step']} steps trainable parameters differ by "
            f"{last['params']['rel']:.2g} and losses by {last['loss_abs']:.2g}, running "
            f"statistics (one variance convention) by {last['stats']['rel']:.2g}"
        )
        if first:
            text += (
                f" (parameters over the pair's tolerance from stored step {first['step']}, "
                f"led by `{first['group']}`, {first['pair']})"
            )
    return text + "."


def _eval_effect(cells: list[Cell]) -> str:
    rows = an.eval_effect(cells)
    if not rows:
        return ""
    pick = [r for r in rows if r["step"] in (1, 10, 20)] or rows[:3]
    text = "; ".join(
        f"step {r['step']} {r['logits']:.2g} ({r['given_var']:.2g} with the other's running "
        "variance)"
        for r in pick
        if r["pair"] == pick[0]["pair"]
    )
    return (
        f"**Eval mode and the running variance** ({pick[0]['pair']}): eval logits differ by "
        f"{text}: the unbiased running variance alone moves eval-mode outputs, and with it "
        "the validation loss of the unbiased framework."
    )


def _unmeasured(cells: list[Cell]) -> str:
    missing = [c for c in cells if "weight" not in c["result"]["conventions"]["core"]]
    text = "; ".join(
        f"{an.label(c)}: {c['result']['conventions']['core'].get('error', '?')[:100]}"
        for c in missing
    )
    return (
        f"**Conventions not measured** (the BN layer refused the probes): {text}." if text else ""
    )


def summary_lines(cells: list[Cell]) -> list[str]:
    """The summary, one finding per line (empty when no backend produced results).

    The convention lines speak only of backends whose layer answered the probes; the others
    are named once, with the error their layer gave.
    """
    if not cells:
        return []
    measured = [c for c in cells if "weight" in c["result"]["conventions"]["core"]]
    lines = [part(measured) for part in (_momentum, _variance, _epsilon)] if measured else []
    lines.append(_unmeasured(cells))
    parts = (
        _batch_one, _float32, _growth, _native_ill, _half, _tiny_batch, _trajectory, _eval_effect
    )
    lines += [part(cells) for part in parts]
    return [line for line in lines if line]
