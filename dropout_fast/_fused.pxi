# Cython wrappers of the fused kernels, included by _core.pyx (shares its helpers _data, _check).
