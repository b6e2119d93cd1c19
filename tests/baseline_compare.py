"""The notebooks' regression baselines: ``tests/baselines/<notebook>.json`` holds each recorded
metric's value with its tolerance; these helpers compare a run with it and rewrite it."""
from pathlib import Path

BASELINE_DIR = Path(__file__).resolve().parent / "baselines"
DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-6


def compare_with_baseline(metrics: dict, baseline: dict) -> list[str]:
    """Differences between recorded metrics and a baseline ``{name: {value, rtol, atol}}``.

    Returns one line per problem: a metric out of tolerance, missing, or not in the baseline.
    """
    problems = []
    for name, spec in sorted(baseline.items()):
        if name not in metrics:
            problems.append(f"{name}: in the baseline but not recorded")
            continue
        expected, got = spec["value"], metrics[name]
        rtol, atol = spec.get("rtol", DEFAULT_RTOL), spec.get("atol", DEFAULT_ATOL)
        if not abs(got - expected) <= atol + rtol * abs(expected):
            problems.append(f"{name}: got {got:.6g}, baseline {expected:.6g} (rtol {rtol:g}, atol {atol:g})")
    for name in sorted(set(metrics) - set(baseline)):
        problems.append(f"{name}: recorded but not in the baseline (run pytest --update-baselines)")
    return problems


def updated_baseline(metrics: dict, old: dict | None) -> dict:
    """A baseline holding the new values, keeping each metric's tolerance from ``old``."""
    old = old or {}
    return {
        name: {
            "value": value,
            "rtol": old.get(name, {}).get("rtol", DEFAULT_RTOL),
            "atol": old.get(name, {}).get("atol", DEFAULT_ATOL),
        }
        for name, value in sorted(metrics.items())
    }
