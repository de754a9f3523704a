"""What an audit knows about a dropout: its kind, its neighbours (`Site`), and
the model-wide facts (`Placement`). Built by ``_fx.py`` from a torch.fx graph or
by ``_placement.py`` from the module order; read by the rules in ``_rules.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from torch import nn

# Layer kinds. "transparent" layers (activations, pooling, reshapes) are walked
# through when looking for the layer before or after a dropout.
_KINDS = (
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
      nn.ConvTranspose3d), "conv"),
    ((nn.Linear, nn.Bilinear, nn.LazyLinear), "linear"),
    ((nn.modules.batchnorm._BatchNorm,), "batchnorm"),
    ((nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm), "norm"),
    ((nn.Embedding, nn.EmbeddingBag), "embedding"),
    ((nn.RNNBase,), "rnn"),
    ((nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.Transformer,
      nn.TransformerEncoder, nn.TransformerDecoder), "transformer"),
    ((nn.MultiheadAttention,), "attention"),
    ((nn.Flatten, nn.Unflatten), "flatten"),
    ((nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.SELU,
      nn.CELU, nn.Mish, nn.Hardswish, nn.Hardtanh, nn.PReLU, nn.Softplus, nn.Identity,
      nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
      nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd),
     "transparent"),
)
# Modules the tracer never enters: their dropout is read from their attributes.
LEAF_TYPES = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.Transformer,
              nn.TransformerEncoder, nn.TransformerDecoder, nn.MultiheadAttention, nn.RNNBase)

def layer_kind(module: Optional[nn.Module]) -> str:
    """One of conv, linear, batchnorm, norm, embedding, rnn, transformer, attention,
    flatten, transparent, dropout, or other."""
    if module is None:
        return "other"
    if dropout_kind(module) is not None:
        return "dropout"
    for types, kind in _KINDS:
        if isinstance(module, types):
            return kind
    return "other"


def dropout_kind(module: nn.Module) -> Optional[str]:
    """elementwise, spatial or alpha for a dropout module (torch's or
    dropout_fast's), None for anything else."""
    name = type(module).__name__
    if isinstance(module, nn.modules.dropout._DropoutNd):
        pass
    elif not (type(module).__module__.startswith("dropout_fast") and "Dropout" in name
              and hasattr(module, "p")) or "Softmax" in name or name.endswith("Add"):
        return None                          # fused attention/residual ops are not sites
    if "Alpha" in name:
        return "alpha"
    if any(s in name for s in ("1d", "2d", "3d", "Spatial", "Feature", "Variational")):
        return "spatial"
    return "elementwise"


def is_torch_dropout(module: nn.Module) -> bool:
    """A module of torch's own dropout classes, exactly (what
    dropout_fast.torch.patch_model replaces; a user's subclass may override forward)."""
    return type(module) in _TORCH_DROPOUTS


_TORCH_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                   nn.FeatureAlphaDropout)


@dataclass
class Layer:
    """A neighbour of a dropout: its module path and kind (and module, if any)."""

    path: str
    kind: str
    module: Optional[nn.Module] = None


@dataclass
class Site:
    """One dropout in the model and what surrounds it.

    prev / next are the nearest non-transparent layers (norms included);
    prev_core / next_core skip norms as well, so ``conv -> BN -> ReLU -> dropout``
    has prev batchnorm and prev_core conv. None at the model's input/output.
    """

    path: str
    kind: str                      # elementwise | spatial | alpha
    p: Optional[float]
    module: Optional[nn.Module]
    prev: Optional[Layer] = None
    prev_core: Optional[Layer] = None
    next: Optional[Layer] = None
    next_core: Optional[Layer] = None
    flattened: bool = False        # a flatten/view lies between prev_core and the dropout
    downstream_bn: bool = False    # a BatchNorm reads the dropped tensor (maybe after one layer)
    on_skip: Optional[bool] = None  # dropout on the identity path of a residual add
    in_branch: Optional[bool] = None  # dropout inside the residual branch
    at_output: bool = False        # nothing but transparent ops between it and the output
    first_conv: bool = False       # prev_core is the model's first convolution
    is_head: bool = False          # next_core is the last Linear before the output
    at_input: bool = False         # drops the model's input (no layer before it)
    input_ndim: Optional[int] = None  # from the example input, when given


@dataclass
class Placement:
    """Sites of a model, how they were found, and model-wide facts."""

    sites: list
    method: str                    # "fx" | "execution-order" | "module-order" | "module-tree"
    residual: bool                 # has an add of a tensor and one derived from it
    note: Optional[str] = None     # why tracing failed, when it did
    modules: dict = field(default_factory=dict)
