"""alignlib: cross-modal alignment for Mamba models, built step by step from the papers' equations."""

__version__ = "0.1.0"
