"""Fusion layers on CPU, forward + backward, in one run:

1. the price of the experts: one Modality-Aware Mamba layer (3 modalities, deterministic and
   learned top-1 routing) against a vanilla Mamba layer of the same width;
2. Coupled Mamba's summed-state parallel scan against its sequential loop.
Run: python benchmarks/bench_fusion_layers.py
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from alignlib.common import threads
from alignlib.ssm.coupled import coupled_scan, coupled_scan_reference
from alignlib.ssm.mamba import Mamba
from alignlib.ssm.modality_mamba import ModalityAwareMamba
from common import median_seconds, write_result

BATCH, TOKENS_PER_MODALITY, D_MODEL, MODALITIES = 16, 100, 128, 3
COUPLED = dict(batch=4, channels=128, states=16, lengths=(256, 1024))


def layer_rows():
    torch.manual_seed(0)
    hidden = torch.randn(BATCH, MODALITIES * TOKENS_PER_MODALITY, D_MODEL)
    modality = torch.arange(MODALITIES).repeat_interleave(TOKENS_PER_MODALITY).expand(BATCH, -1)
    layers = {
        "vanilla Mamba": (Mamba(D_MODEL), lambda layer, h: layer(h)),
        "Modality-Aware, deterministic": (ModalityAwareMamba(D_MODEL, MODALITIES), lambda layer, h: layer(h, modality)),
        "Modality-Aware, learned top-1": (ModalityAwareMamba(D_MODEL, MODALITIES, routing="learned"),
                                          lambda layer, h: layer(h, modality)),
    }
    rows = []
    for name, (layer, call) in layers.items():
        def step(layer=layer, call=call):
            layer.zero_grad()
            call(layer, hidden).square().mean().backward()
        rows.append({"layer": name, "seconds": median_seconds(step, repeats=5),
                     "parameters": sum(p.numel() for p in layer.parameters())})
    for row in rows:
        row["ratio_to_vanilla"] = row["seconds"] / rows[0]["seconds"]
    return rows


def coupled_rows():
    rows = []
    g = torch.Generator().manual_seed(0)
    for length in COUPLED["lengths"]:
        shape = (MODALITIES, COUPLED["batch"], COUPLED["channels"], length)
        inputs = dict(u=torch.randn(*shape, generator=g), delta=F.softplus(torch.randn(*shape, generator=g) - 1) + 1.2,
                      A=-torch.rand(MODALITIES, COUPLED["channels"], COUPLED["states"], generator=g) - 1,
                      B=torch.randn(MODALITIES, COUPLED["batch"], COUPLED["states"], length, generator=g),
                      C=torch.randn(MODALITIES, COUPLED["batch"], COUPLED["states"], length, generator=g))
        timings = {}
        for name, scan in (("loop", coupled_scan_reference), ("parallel", coupled_scan)):
            def step(scan=scan):
                leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
                scan(**leaves).sum().backward()
            timings[name] = median_seconds(step, repeats=3)
        rows.append({"length": length, "loop_s": timings["loop"], "parallel_s": timings["parallel"],
                     "speedup": timings["loop"] / timings["parallel"]})
    return rows


def main() -> None:
    threads.configure()
    layers, coupled = layer_rows(), coupled_rows()
    print(f"one layer, forward+backward, B={BATCH}, {MODALITIES}x{TOKENS_PER_MODALITY} tokens, d_model={D_MODEL}, "
          f"threads={torch.get_num_threads()}")
    for row in layers:
        print(f"  {row['layer']:<32} {row['seconds'] * 1e3:8.1f} ms  x{row['ratio_to_vanilla']:.2f} vanilla  "
              f"{row['parameters']:>8} parameters")
    print(f"Coupled scan, forward+backward, M={MODALITIES}, B={COUPLED['batch']}, D={COUPLED['channels']}, N={COUPLED['states']}")
    for row in coupled:
        print(f"  L={row['length']:>5}: loop {row['loop_s']:.3f} s, parallel {row['parallel_s']:.3f} s, "
              f"speedup {row['speedup']:.2f}x")
    path = write_result("fusion_layers", {"layers": layers, "coupled": coupled})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
