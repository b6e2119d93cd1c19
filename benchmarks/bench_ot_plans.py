"""Batched transport plans on CPU: alignlib against a POT loop over the batch, in one run.

B=64 pairs of 50x50 tokens, d=128 (warped pairs, so the plans have a known answer).
Rows: entropic plan (alignlib's batched GeomLoss + log-domain polish vs POT's log-domain
Sinkhorn per pair, same epsilon, tolerance and iteration cap), exact plan (alignlib vs POT's
network simplex per pair) and the relaxed plan (vs the same exact loop it replaces).
Run: python benchmarks/bench_ot_plans.py
"""
from __future__ import annotations

import warnings

import numpy as np
import ot as pot
import torch

from alignlib.common import threads
from alignlib.align import ot
from alignlib.data.warped_pairs import warped_pair
from common import median_seconds, write_result

BATCH, TOKENS, DIM, MAX_ITER, TOL = 64, 50, 128, 2000, 1e-5


def main() -> None:
    threads.configure()
    pair = warped_pair(TOKENS, TOKENS, dim=DIM, noise=0.5, warp=1.0, batch=BATCH, seed=0, dtype=torch.float32)
    x, y = pair.source, pair.target
    cost = ot.cosine_cost(x, y).double().numpy()
    weights = np.full(TOKENS, 1.0 / TOKENS)

    def pot_sinkhorn_loop():
        return np.stack([pot.sinkhorn(weights, weights, cost[k], ot.BLUR**2, method="sinkhorn_log",
                                      numItermax=MAX_ITER, stopThr=TOL) for k in range(BATCH)])

    def pot_emd_loop():
        return np.stack([pot.emd(weights, weights, cost[k]) for k in range(BATCH)])

    def alignlib_entropic():
        return ot.entropic_plan(x, y, blur=ot.BLUR, tol=TOL, max_iter=MAX_ITER)

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both solvers may stop at the iteration cap at this blur
        for name, ours, peer, peer_name in [
            ("entropic plan", alignlib_entropic, pot_sinkhorn_loop, "POT sinkhorn_log loop"),
            ("exact plan", lambda: ot.exact_plan(x, y), pot_emd_loop, "POT emd loop"),
            ("relaxed plan", lambda: ot.relaxed_plan(x, y), pot_emd_loop, "POT emd loop"),
        ]:
            ours_s, peer_s = median_seconds(ours), median_seconds(peer)
            plan = ours().double().numpy()
            rows.append({
                "plan": name, "peer": peer_name, "alignlib_s": ours_s, "peer_s": peer_s,
                "speedup": peer_s / ours_s,
                "max_abs_diff_to_peer": float(np.abs(plan - peer()).max()),
                "accuracy": ot.correspondence_accuracy(torch.from_numpy(plan), pair.correspondence),
            })

    print(f"B={BATCH}, {TOKENS}x{TOKENS} tokens, d={DIM}, blur={ot.BLUR}, threads={torch.get_num_threads()}")
    print(f"{'plan':<14} {'alignlib s':>11} {'peer':<22} {'peer s':>8} {'speedup':>8} {'max|diff|':>10} {'accuracy':>9}")
    for r in rows:
        print(f"{r['plan']:<14} {r['alignlib_s']:>11.4f} {r['peer']:<22} {r['peer_s']:>8.4f} "
              f"{r['speedup']:>7.1f}x {r['max_abs_diff_to_peer']:>10.1e} {r['accuracy']:>9.3f}")
    path = write_result("ot_plans", {"batch": BATCH, "tokens": TOKENS, "dim": DIM, "blur": ot.BLUR,
                                     "max_iter": MAX_ITER, "tol": TOL, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
