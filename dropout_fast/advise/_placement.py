"""Where each dropout sits in a torch model.

Placement comes from a ``torch.fx`` graph when the model traces (a custom
tracer keeps transformer layers, attention and recurrent modules as leaves, so
their internals are read from the module tree instead), and otherwise from the
order of the leaf modules: their execution order when an example input is
given (forward hooks), else their registration order. The rules in
``_rules.py`` read only the `Site` records built here.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import fx, nn

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

_FLATTEN_FUNCS = {torch.flatten, torch.reshape}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}
_TRANSPARENT_FUNCS = {torch.relu, torch.tanh, torch.sigmoid, nn.functional.relu,
                      nn.functional.gelu, nn.functional.silu, nn.functional.leaky_relu,
                      nn.functional.max_pool1d, nn.functional.max_pool2d,
                      nn.functional.avg_pool1d, nn.functional.avg_pool2d,
                      nn.functional.adaptive_avg_pool2d, operator.getitem}
_TRANSPARENT_METHODS = {"relu", "tanh", "sigmoid", "contiguous", "mean", "squeeze", "unsqueeze",
                        "permute", "transpose"}
_ADD = {operator.add, operator.iadd, torch.add}
_DROPOUT_FUNCS = {nn.functional.dropout: "elementwise", nn.functional.dropout1d: "spatial",
                  nn.functional.dropout2d: "spatial", nn.functional.dropout3d: "spatial",
                  nn.functional.alpha_dropout: "alpha", torch.dropout: "elementwise"}


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
              and hasattr(module, "p")):
        return None
    if "Alpha" in name:
        return "alpha"
    if any(s in name for s in ("1d", "2d", "3d", "Spatial", "Feature", "Variational")):
        return "spatial"
    return "elementwise"


def is_torch_dropout(module: nn.Module) -> bool:
    """A module of torch's own dropout family (what patch_model would replace)."""
    return (isinstance(module, nn.modules.dropout._DropoutNd)
            and type(module).__module__.startswith("torch."))


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
    input_ndim: Optional[int] = None  # from the example input, when given


@dataclass
class Placement:
    """Sites of a model, how they were found, and model-wide facts."""

    sites: list
    method: str                    # "fx" | "execution-order" | "module-order" | "module-tree"
    residual: bool                 # has an add of a tensor and one derived from it
    note: Optional[str] = None     # why tracing failed, when it did
    modules: dict = field(default_factory=dict)


class _Tracer(fx.Tracer):
    """torch.fx's tracer, keeping transformer/attention/RNN modules and
    dropout_fast's torch layers as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, LEAF_TYPES) or dropout_kind(m) is not None:
            return True
        return super().is_leaf_module(m, qualname)


def _const_p(node: fx.Node) -> Optional[float]:
    p = node.kwargs.get("p", node.args[1] if len(node.args) > 1 else 0.5)
    return float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else None


def _ancestors(graph: fx.Graph) -> dict:
    anc: dict = {}
    for node in graph.nodes:                  # nodes are in topological order
        s = set()
        for i in node.all_input_nodes:
            s.add(i)
            s |= anc[i]
        anc[node] = s
    return anc


def analyse(model: nn.Module, example_input: Any = None) -> Placement:
    """Find every dropout of `model` and its neighbours (see `Site`)."""
    modules = dict(model.named_modules())
    if isinstance(model, LEAF_TYPES):         # read from the module tree only
        return Placement([], "module-tree", False, modules=modules)
    shapes = _run_hooks(model, example_input) if example_input is not None else None
    try:
        graph = _Tracer().trace(model)
    except Exception as exc:                  # fx raises many types for untraceable code
        note = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return _from_order(model, modules, shapes, note)
    placement = _from_graph(graph, modules)
    if shapes is not None:
        for site in placement.sites:
            site.input_ndim = shapes[1].get(site.path)
    return placement


def _leaf_modules(model: nn.Module) -> list:
    """(path, module) of modules without children and of LEAF_TYPES, not
    entering the latter, in registration order."""
    out, inside = [], []
    for name, m in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in inside):
            continue
        if isinstance(m, LEAF_TYPES):
            inside.append(name)
            out.append((name, m))
        elif not list(m.children()):
            out.append((name, m))
    return out


def _run_hooks(model, example_input):
    """Run the model once (eval mode, no grad) to get leaf execution order and
    each dropout's input rank."""
    order, ndims, handles = [], {}, []
    for name, m in _leaf_modules(model):
            def hook(mod, args, out, name=name):
                if name not in ndims:
                    order.append(name)
                    ndims[name] = args[0].dim() if args and torch.is_tensor(args[0]) else None
            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            if isinstance(example_input, (tuple, list)):
                model(*example_input)
            else:
                model(example_input)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return order, ndims


def _node_layer(node: fx.Node, modules: dict) -> tuple:
    """(kind, Layer or None, flattens) of one graph node."""
    if node.op == "call_module":
        m = modules.get(node.target)
        kind = layer_kind(m)
        return kind, Layer(node.target, kind, m), kind == "flatten"
    if node.op == "call_function":
        if node.target in _DROPOUT_FUNCS:
            return "dropout", None, False
        if node.target in _FLATTEN_FUNCS:
            return "flatten", None, True
        if node.target in _TRANSPARENT_FUNCS:
            return "transparent", None, False
        if node.target in _ADD:
            return "add", None, False
    if node.op == "call_method":
        if node.target in _FLATTEN_METHODS:
            return "flatten", None, True
        if node.target in _TRANSPARENT_METHODS:
            return "transparent", None, False
        if node.target in ("add", "add_"):
            return "add", None, False
    if node.op == "placeholder":
        return "input", None, False
    if node.op == "output":
        return "output", None, False
    return "other", Layer(node.name, "other"), False


_PASS = ("transparent", "flatten", "dropout")


def _from_graph(graph: fx.Graph, modules: dict) -> Placement:
    anc = _ancestors(graph)
    info = {n: _node_layer(n, modules) for n in graph.nodes}
    adds = [n for n in graph.nodes if info[n][0] == "add"
            and sum(isinstance(a, fx.Node) for a in n.args[:2]) == 2]
    residual = any(_strip(a, info) in anc[b] or _strip(a, info) is _strip(b, info)
                   for n in adds for a, b in (n.args[:2], n.args[1::-1]))
    convs = [n.target for n in graph.nodes if info[n][0] == "conv"]
    sites = []
    for node in graph.nodes:
        if info[node][0] != "dropout":
            continue
        if node.op == "call_module":
            m = modules[node.target]
            site = Site(node.target, dropout_kind(m), float(getattr(m, "p", 0.0)), m)
        else:
            name = getattr(node.target, "__name__", str(node.target))
            site = Site(f"{node.name} (F.{name})", _DROPOUT_FUNCS[node.target], _const_p(node),
                        None)
        # Backward: through transparent ops to the producing layer.
        src, flat = node.args[0] if node.args else None, False
        while isinstance(src, fx.Node):
            k, lay, fl = info[src]
            flat |= fl
            if k in _PASS:
                src = src.args[0] if src.args and isinstance(src.args[0], fx.Node) else None
                continue
            if k == "add":                    # x + a parameter (positions): walk through
                varying = [a for a in src.args[:2] if isinstance(a, fx.Node) and any(
                    b.op == "call_module" for b in anc[a] | {a})]
                if len(varying) == 1:
                    src = varying[0]
                    continue
            if lay is not None:
                if site.prev is None:
                    site.prev = lay
                if k not in ("batchnorm", "norm"):
                    site.prev_core = lay
                    break
                src = src.args[0] if src.args and isinstance(src.args[0], fx.Node) else None
                continue
            break
        site.flattened = flat
        site.first_conv = bool(site.prev_core and site.prev_core.kind == "conv" and convs
                               and site.prev_core.path == convs[0])
        _forward_walk(node, info, anc, site)
        sites.append(site)
    return Placement(sites, "fx", residual, modules=modules)


def _users_through(node: fx.Node, info: dict):
    """Consumers of `node`, looking through transparent ops: (user, the node it reads)."""
    stack, seen = [node], set()
    while stack:
        cur = stack.pop(0)
        for user in cur.users:
            if user in seen:
                continue
            seen.add(user)
            if info[user][0] in _PASS:
                stack.append(user)
            else:
                yield user, cur


def _forward_walk(node: fx.Node, info: dict, anc: dict, site: Site) -> None:
    """Consumers of the dropped tensor: next layers, a downstream BatchNorm
    (directly or after one layer), the residual add it feeds, the output."""
    drop_in = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    frontier = [node]
    while frontier:
        cur = frontier.pop(0)
        for user, via in _users_through(cur, info):
            k, lay, _ = info[user]
            if k == "output":
                site.at_output |= cur is node
            elif k == "add" and cur is node and drop_in is not None:
                other = [a for a in user.args[:2] if isinstance(a, fx.Node) and a is not via]
                if other:
                    if _reaches(drop_in, other[0], node):
                        site.on_skip = True
                    elif other[0] in anc[drop_in]:
                        site.in_branch = True
            elif lay is not None:
                site.next = site.next or lay
                if k == "batchnorm":
                    site.downstream_bn = True
                if k in ("batchnorm", "norm"):
                    frontier.append(user)
                elif site.next_core is None:
                    site.next_core = lay
                    site.is_head = k == "linear" and _reaches_output(user, info)
                    site.downstream_bn |= any(info[u][0] == "batchnorm"
                                              for u, _ in _users_through(user, info))


def _strip(node: fx.Node, info: dict) -> fx.Node:
    """`node` with transparent ops and dropouts peeled off its input side."""
    while info[node][0] in _PASS and node.args and isinstance(node.args[0], fx.Node):
        node = node.args[0]
    return node


def _reaches(src: fx.Node, dst: fx.Node, avoid: fx.Node) -> bool:
    """Whether `dst` is `src` or computed from it along a path not through `avoid`."""
    stack, seen = [dst], set()
    while stack:
        cur = stack.pop()
        if cur is src:
            return True
        if cur is avoid or cur in seen:
            continue
        seen.add(cur)
        stack.extend(cur.all_input_nodes)
    return False


def _reaches_output(node: fx.Node, info: dict) -> bool:
    stack = [node]
    while stack:
        cur = stack.pop()
        for user in cur.users:
            k = info[user][0]
            if k == "output":
                return True
            if k in _PASS:
                stack.append(user)
    return False


def _from_order(model: nn.Module, modules: dict, shapes, note: str) -> Placement:
    """Neighbours from the sequence of leaf modules (execution order with an
    example input, registration order without)."""
    if shapes is not None:
        order, method = shapes[0], "execution-order"
    else:
        order, method = [name for name, _ in _leaf_modules(model)], "module-order"
    seq = [Layer(n, layer_kind(modules[n]), modules[n]) for n in order]
    convs = [lay.path for lay in seq if lay.kind == "conv"]
    sites = []
    for i, lay in enumerate(seq):
        if lay.kind != "dropout":
            continue
        m = lay.module
        site = Site(lay.path, dropout_kind(m), float(getattr(m, "p", 0.0)), m)
        for j in range(i - 1, -1, -1):
            k = seq[j].kind
            site.flattened |= k == "flatten"
            if k in _PASS:
                continue
            site.prev = site.prev or seq[j]
            if k not in ("batchnorm", "norm"):
                site.prev_core = seq[j]
                break
        rest = [s for s in seq[i + 1:] if s.kind not in _PASS]
        site.at_output = not rest
        if rest:
            site.next = rest[0]
            cores = [s for s in rest if s.kind not in ("batchnorm", "norm")]
            site.next_core = cores[0] if cores else None
            site.downstream_bn = any(s.kind == "batchnorm" for s in rest[:3])
            site.is_head = (site.next_core is not None and site.next_core.kind == "linear"
                            and len(cores) == 1)
        site.first_conv = bool(site.prev_core and convs and site.prev_core.path == convs[0])
        if shapes is not None:
            site.input_ndim = shapes[1].get(site.path)
        sites.append(site)
    residual = False  # unknowable without a graph
    return Placement(sites, method, residual, note=note, modules=modules)
