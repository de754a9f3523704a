"""dropout_fast for PyTorch: drop-in functional ops and nn.Modules.

Importable only when torch is installed (``pip install dropout_fast[torch]``).
Swap one import (``from dropout_fast.torch import nn as dnn``; ``dnn.Dropout``)
or call ``patch_model(model)``. CPU tensors only; masks come from the Philox
stream contract with the seed drawn from a torch.Generator (see _rng.py).
"""
from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("dropout_fast.torch needs PyTorch: pip install 'dropout_fast[torch]'"
                      ) from exc

from dropout_fast.torch import functional
from dropout_fast.torch.modules import (AlphaDropout, BiasDropoutAdd, DropBlock2d, DropBlock3d,
                                        DropPath, Dropout, Dropout1d, Dropout2d, Dropout3d,
                                        FeatureAlphaDropout, GaussianDropout, SoftmaxDropout,
                                        SpatialDropout, VariationalDropout)
from dropout_fast.torch.patch import PatchReport, Replacement, patch_model, unpatch_model
from dropout_fast.torch.mc import MCResult, mc_predict
from dropout_fast.torch._rng import (draw_seed, identical_masks, numpy_generator, rank_folding,
                                     set_rank_folding, stream_id)
from dropout_fast.torch.functional import (alpha_dropout, bias_dropout_add, drop_block,
                                           drop_block2d, drop_block3d, drop_connect, drop_path,
                                           dropout, dropout1d, dropout2d, dropout3d,
                                           embedding_dropout, feature_alpha_dropout,
                                           gaussian_dropout, softmax_dropout, spatial_dropout,
                                           variational_dropout)

__all__ = [
    "functional", "dropout", "dropout1d", "dropout2d", "dropout3d", "spatial_dropout",
    "alpha_dropout", "feature_alpha_dropout", "variational_dropout", "drop_path",
    "drop_connect", "gaussian_dropout", "drop_block", "drop_block2d", "drop_block3d",
    "embedding_dropout", "softmax_dropout", "bias_dropout_add", "draw_seed", "identical_masks",
    "numpy_generator",
    "rank_folding", "set_rank_folding", "stream_id",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "SpatialDropout", "DropPath", "GaussianDropout", "VariationalDropout", "DropBlock2d",
    "DropBlock3d", "SoftmaxDropout", "BiasDropoutAdd",
    "patch_model", "unpatch_model", "PatchReport", "Replacement",
]
__all__ += ["mc_predict", "MCResult"]
