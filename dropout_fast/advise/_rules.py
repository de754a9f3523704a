"""The dropout rules from practice, one function per rule.

Each rule reads `Site` records (from ``_placement.py``) or the module tree and
returns `Finding` records. The ranges are the usual ones from the literature:

- dense layers: Srivastava et al. (2014), "Dropout: a simple way to prevent
  neural networks from overfitting", JMLR 15: p = 0.5 for hidden units is near
  optimal for a wide range of networks; higher rates need far more units and
  epochs, so above 0.5 the rate is more likely to hurt than help.
- convolutions: Tompson et al. (2015), "Efficient object localization using
  convolutional networks", CVPR: neighbouring activations of a feature map are
  strongly correlated, so element-wise dropout barely regularises them; drop
  whole channels (spatial dropout) at low rates.
- recurrent networks: Gal & Ghahramani (2016), "A theoretically grounded
  application of dropout in recurrent neural networks", NeurIPS: one mask per
  sequence (variational), also on the recurrent connection.
- transformers: Vaswani et al. (2017), "Attention is all you need": residual
  and attention dropout 0.1.
- BatchNorm: Li et al. (2019), "Understanding the disharmony between dropout
  and batch normalization by variance shift", CVPR.
- skip connections: He et al. (2016), "Identity mappings in deep residual
  networks", ECCV: dropout on the shortcut impedes signal propagation.
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from dropout_fast.advise._finding import Finding
from dropout_fast.advise._sites import Placement, Site, is_torch_dropout

SRIVASTAVA = "Srivastava et al. 2014"
TOMPSON = "Tompson et al. 2015"
GAL = "Gal & Ghahramani 2016"
VASWANI = "Vaswani et al. 2017"
LI = "Li et al. 2019"
HE = "He et al. 2016"

# (low, high) recommended rates by layer type.
RANGES = {
    "dense-input": (0.0, 0.2),
    "dense-head": (0.3, 0.5),
    "dense": (0.2, 0.4),
    "conv-early": (0.0, 0.1),
    "conv-late": (0.1, 0.2),
    "recurrent": (0.1, 0.25),
    "attention": (0.0, 0.2),
    "embedding": (0.05, 0.1),
}
def _name(site: Site) -> str:
    kind = type(site.module).__name__ if site.module is not None else "dropout"
    return f"{kind}(p={site.p:g})" if site.p is not None else kind


def _rng(key: str) -> str:
    lo, hi = RANGES[key]
    return f"{lo:g}-{hi:g}"


def _is_residual_branch(site: Site) -> bool:
    """Dropout at the end of a dense or attention residual branch (transformer style)."""
    return bool(site.in_branch and site.next_core is None and site.prev_core is not None
                and site.prev_core.kind in ("linear", "attention"))


def _is_dense(site: Site) -> bool:
    if _is_residual_branch(site):
        return False
    core = site.next_core or site.prev_core
    if site.flattened or (site.next_core is not None and site.next_core.kind == "linear"):
        return True
    return core is not None and core.kind == "linear" and site.input_ndim in (None, 2)


def _is_conv(site: Site) -> bool:
    return (not site.flattened and site.prev_core is not None and site.prev_core.kind == "conv"
            and not (site.next_core is not None and site.next_core.kind == "linear"
                     and site.input_ndim == 2))


def rule_dense_rate(site: Site) -> list:
    """Dense layers: head 0.3-0.5, intermediate 0.2-0.4, inputs 0.0-0.2 (Srivastava
    et al. keep 80% of inputs); above 0.5 likely to hurt."""
    if site.p is None or not _is_dense(site) or _is_conv(site) or site.at_output:
        return []
    key = "dense-input" if site.at_input else "dense-head" if site.is_head else "dense"
    lo, hi = RANGES[key]
    where = {"dense-input": "on the inputs", "dense-head": "before the output layer",
             "dense": "between dense layers"}[key]
    found = f"{_name(site)} {where}"
    if site.p > 0.5:
        return [Finding("error", site.path, "dense-rate", f"{found}: above 0.5",
                        f"likely to hurt (underfits, slows training); use {_rng(key)}",
                        SRIVASTAVA)]
    if site.p > hi:
        return [Finding("warning", site.path, "dense-rate", f"{found}: above {hi:g}",
                        f"usual range {_rng(key)}", SRIVASTAVA)]
    if 0 < site.p < lo:
        return [Finding("info", site.path, "dense-rate", f"{found}: below {lo:g}",
                        f"usual range {_rng(key)}; raise it if validation lags training",
                        SRIVASTAVA)]
    return []


def rule_conv_rate(site: Site) -> list:
    """Convolutions: early 0.0-0.1, later 0.1-0.2 (as spatial dropout)."""
    if site.p is None or not _is_conv(site):
        return []
    key = "conv-early" if site.first_conv else "conv-late"
    hi = RANGES[key][1]
    stage = "the first convolution" if site.first_conv else "a later convolution"
    if site.p > hi:
        return [Finding("warning", site.path, "conv-rate",
                        f"{_name(site)} after {stage} ({site.prev_core.path}): above {hi:g}",
                        f"use {_rng(key)} after {'early' if site.first_conv else 'later'} "
                        "convolutions", TOMPSON)]
    return []


def rule_spatial(site: Site) -> list:
    """Element-wise dropout right after a convolution block: use spatial dropout."""
    maps = site.input_ndim is not None and site.input_ndim >= 4
    if site.kind != "elementwise" or not (_is_conv(site) or (maps and not site.flattened)):
        return []
    after = site.prev_core.path if site.prev_core is not None else "a convolution"
    return [Finding("warning", site.path, "spatial",
                    f"element-wise {_name(site)} on feature maps of {after}",
                    "neighbouring pixels are correlated, so it barely regularises: use "
                    "nn.Dropout2d (whole channels) or dropout_fast.spatial_dropout", TOMPSON)]


def rule_skip(site: Site) -> list:
    """Dropout on the identity path of a residual block."""
    if not site.on_skip:
        return []
    return [Finding("error", site.path, "skip-path",
                    f"{_name(site)} on the skip connection of a residual add",
                    "dropping the identity path damages gradient flow; move it into the "
                    "residual branch (or use drop_path on the whole branch)", HE)]


def rule_batchnorm(site: Site, placement: Placement) -> list:
    """Dropout feeding a BatchNorm in a residual network, above 0.1."""
    if not (placement.residual and site.downstream_bn and site.p is not None and site.p > 0.1):
        return []
    return [Finding("warning", site.path, "bn-variance-shift",
                    f"{_name(site)} before a BatchNorm in a residual network",
                    "the variance shift between train and eval hurts BN statistics: keep it "
                    "<= 0.1 or move dropout after the last BatchNorm", LI)]


def rule_output(site: Site, task: str) -> list:
    """Dropout on the final output."""
    if not site.at_output:
        return []
    if task == "regression":
        return [Finding("error", site.path, "regression-output",
                        f"{_name(site)} on the output of a regression model",
                        "remove it: it scales and zeroes the predictions themselves; put "
                        "dropout before the last Linear", SRIVASTAVA)]
    return [Finding("warning", site.path, "output",
                    f"{_name(site)} on the model's output (logits)",
                    "put dropout before the last Linear, not after it", SRIVASTAVA)]


def rule_recurrent_site(site: Site) -> list:
    """Element-wise dropout on a recurrent layer's input/output sequence."""
    near = [lay for lay in (site.prev_core, site.next_core) if lay is not None]
    if not any(lay.kind == "rnn" for lay in near) or site.p is None:
        return []
    out = []
    if site.kind == "elementwise":
        out.append(Finding("warning", site.path, "recurrent-mask",
                           f"element-wise {_name(site)} on a recurrent layer's sequence",
                           "it draws a new mask per timestep; use one mask per sequence "
                           "(dropout_fast.variational_dropout / RecurrentDropout)", GAL))
    hi = RANGES["recurrent"][1]
    if site.p > hi:
        out.append(Finding("warning", site.path, "recurrent-rate",
                           f"{_name(site)} next to a recurrent layer: above {hi:g}",
                           f"usual range {_rng('recurrent')} (variational)", GAL))
    return out


def rule_rnn_module(path: str, m: nn.Module) -> list:
    """nn.LSTM/GRU/RNN dropout= drops between stacked layers only."""
    if not isinstance(m, nn.RNNBase) or m.dropout <= 0:
        return []
    name = f"{type(m).__name__}(num_layers={m.num_layers}, dropout={m.dropout:g})"
    if m.num_layers == 1:
        return [Finding("warning", path, "rnn-dropout", f"{name}: dropout= has no effect",
                        "it only drops between stacked layers; for recurrent regularisation "
                        "use variational dropout (dropout_fast.RecurrentDropout)", GAL)]
    out = [Finding("info", path, "rnn-dropout",
                   f"{name} drops between layers, not on the recurrent connection",
                   "if it still overfits, add variational dropout on the recurrent state "
                   "(dropout_fast.RecurrentDropout)", GAL)]
    hi = RANGES["recurrent"][1]
    if m.dropout > hi:
        out.append(Finding("warning", path, "recurrent-rate", f"{name}: above {hi:g}",
                           f"usual range {_rng('recurrent')}", GAL))
    return out


def _rate(x) -> Optional[float]:
    if isinstance(x, nn.Module):
        return float(getattr(x, "p", 0.0))
    return float(x) if isinstance(x, (int, float)) else None


def rule_transformer(path: str, m: nn.Module) -> list:
    """Attention and residual dropout of transformer layers outside 0.0-0.2."""
    rates = {}
    if isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        for name in ("dropout", "dropout1", "dropout2", "dropout3"):
            if hasattr(m, name):
                rates[name] = _rate(getattr(m, name))
        for name in ("self_attn", "multihead_attn"):
            if hasattr(m, name):
                rates[f"{name}.dropout"] = _rate(getattr(m, name).dropout)
    elif isinstance(m, nn.MultiheadAttention) and not path.endswith(("self_attn",
                                                                     "multihead_attn")):
        rates["dropout"] = _rate(m.dropout)
    lo, hi = RANGES["attention"]
    bad = {k: v for k, v in rates.items() if v is not None and not lo <= v <= hi}
    if not bad:
        return []
    listed = ", ".join(f"{k}={v:g}" for k, v in bad.items())
    return [Finding("warning", path, "transformer-rate",
                    f"{type(m).__name__} with {listed}: outside {_rng('attention')}",
                    "attention and residual dropout 0.1 (0.0 for large data)", VASWANI)]


def rule_residual_rate(site: Site) -> list:
    """Dropout on a dense/attention residual branch (before the add): 0.0-0.2."""
    hi = RANGES["attention"][1]
    if site.p is None or not _is_residual_branch(site) or site.p <= hi:
        return []
    return [Finding("warning", site.path, "residual-rate",
                    f"{_name(site)} on a residual branch after {site.prev_core.path}: "
                    f"above {hi:g}", "residual dropout 0.1 (0.0 for large data)", VASWANI)]


def rule_embedding(site: Site) -> list:
    """Dropout right after an embedding: 0.05-0.1."""
    if site.p is None or site.prev_core is None or site.prev_core.kind != "embedding":
        return []
    hi = RANGES["embedding"][1]
    if site.p <= hi:
        return []
    return [Finding("warning", site.path, "embedding-rate",
                    f"{_name(site)} after embedding {site.prev_core.path}: above {hi:g}",
                    f"usual range {_rng('embedding')} (dropout_fast.embedding_dropout drops "
                    "whole tokens)", GAL)]


def rule_patchable(model: nn.Module) -> list:
    """torch dropout modules that dropout_fast.torch.patch_model can replace."""
    counts: dict = {}
    for _, m in model.named_modules():
        if is_torch_dropout(m) and m.p > 0:
            counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
    if not counts:
        return []
    listed = ", ".join(f"{n} x{c}" for n, c in sorted(counts.items()))
    return [Finding("info", "", "patchable", f"torch dropout modules: {listed}",
                    "dropout_fast.torch.patch_model(model) swaps them for the fused kernels "
                    "(faster; 1-bit masks instead of a full-size one)", "dropout_fast")]
