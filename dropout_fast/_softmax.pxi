# Cython wrappers of the softmax kernels, included by _core.pyx (shares its helpers _data, _check).
