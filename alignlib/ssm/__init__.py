"""State-space model blocks, from the scan up to the multimodal layers.

* :mod:`~alignlib.ssm.recurrence` -- the diagonal linear recurrence and its adjoint;
* :mod:`~alignlib.ssm.kernels` -- C++ kernels compiled on first use (the fused selective scan);
* :mod:`~alignlib.ssm.selective_scan` -- Mamba's selective scan: loop, chunked, fused, mamba-ssm's CUDA kernel;
* :mod:`~alignlib.ssm.mamba` -- the Mamba block (mamba-ssm's layout), ``Block``, ``MambaLayer``, ``MambaStack``;
* :mod:`~alignlib.ssm.modality_mamba` -- AlignMamba-2's Modality-Aware Mamba (experts, routing);
* :mod:`~alignlib.ssm.coupled` -- Coupled Mamba's summed-state scan and layer.
"""
