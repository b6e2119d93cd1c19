"""MMD on CPU: alignlib against a straightforward implementation, in one run.

1. B=64 pairs of 500x128 token sets, gamma = 1/d, biased estimator: ``alignlib.align.mmd.mmd2`` against
   ``torch.cdist`` + ``exp`` over the three kernel blocks; forward, and forward + backward.
2. The linear-time estimator at 1k, 4k and 16k tokens per set (B=8), beside the quadratic one:
   the time ratio between consecutive sizes should be about 4 for linear, 16 for quadratic.
Run: python benchmarks/bench_mmd.py
"""
from __future__ import annotations

import torch

from alignlib.common import threads
from alignlib.align import mmd
from common import median_seconds, write_result

BATCH, TOKENS, DIM = 64, 500, 128


def straightforward_mmd2(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """The paper's three sums with torch.cdist and exp, as one would first write them."""
    k_xx = torch.exp(-gamma * torch.cdist(x, x).pow(2))
    k_yy = torch.exp(-gamma * torch.cdist(y, y).pow(2))
    k_xy = torch.exp(-gamma * torch.cdist(x, y).pow(2))
    return k_xx.mean(dim=(1, 2)) + k_yy.mean(dim=(1, 2)) - 2 * k_xy.mean(dim=(1, 2))


def forward_backward(fn, x, y):
    def run():
        xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
        fn(xg, yg).sum().backward()
    return run


def main() -> None:
    threads.configure()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, TOKENS, DIM, generator=generator)
    y = 0.3 + torch.randn(BATCH, TOKENS, DIM, generator=generator)
    gamma = 1.0 / DIM
    ours = lambda a, b: mmd.mmd2(a, b)  # noqa: E731
    peer = lambda a, b: straightforward_mmd2(a, b, gamma)  # noqa: E731
    agreement = (ours(x, y) - peer(x, y)).abs().max().item()

    rows = []
    for mode, make in [("forward", lambda fn: (lambda: fn(x, y))), ("forward+backward", lambda fn: forward_backward(fn, x, y))]:
        with torch.no_grad() if mode == "forward" else torch.enable_grad():
            ours_s, peer_s = median_seconds(make(ours)), median_seconds(make(peer))
        rows.append({"mode": mode, "alignlib_s": ours_s, "straightforward_s": peer_s, "speedup": peer_s / ours_s})

    scaling = []
    with torch.no_grad():
        for tokens in (1000, 4000, 16000):
            xl = torch.randn(8, tokens, DIM, generator=generator)
            yl = 0.3 + torch.randn(8, tokens, DIM, generator=generator)
            entry = {"tokens": tokens, "linear_s": median_seconds(lambda: mmd.mmd2_linear(xl, yl), repeats=5)}
            if tokens <= 4000:  # the quadratic estimator at 16k tokens needs 8 x 32k^2 floats (32 GiB)
                entry["quadratic_s"] = median_seconds(lambda: mmd.mmd2(xl, yl, estimator="unbiased"), repeats=1)
            scaling.append(entry)

    print(f"MMD^2, B={BATCH}, {TOKENS}x{TOKENS} tokens, d={DIM}, threads={torch.get_num_threads()}; "
          f"max |alignlib - straightforward| = {agreement:.1e}")
    for r in rows:
        print(f"  {r['mode']:<17} alignlib {r['alignlib_s']:.3f} s   cdist+exp {r['straightforward_s']:.3f} s   "
              f"speedup {r['speedup']:.2f}x")
    print("linear-time estimator (B=8, d=128):")
    for previous, entry in zip([None] + scaling[:-1], scaling):
        growth = f"  x{entry['linear_s'] / previous['linear_s']:.1f} for x4 tokens" if previous else ""
        quadratic = f"   quadratic {entry['quadratic_s']:.3f} s" if "quadratic_s" in entry else ""
        print(f"  {entry['tokens']:>6} tokens: linear {entry['linear_s'] * 1e3:.2f} ms{growth}{quadratic}")
    path = write_result("mmd", {"batch": BATCH, "tokens": TOKENS, "dim": DIM, "max_abs_diff": agreement,
                                "rows": rows, "linear_scaling": scaling})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
