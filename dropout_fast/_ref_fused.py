"""Numba kernels of the fused fusions, re-exported by reference.py."""
__all__ = []
