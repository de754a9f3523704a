"""Numba kernels of the softmax fusions, re-exported by reference.py."""
__all__ = []
