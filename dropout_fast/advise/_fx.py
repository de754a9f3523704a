"""Placement from a torch.fx graph: walk from each dropout back to the layer
that produced its input and forward to the layers, adds and output that read it."""
from __future__ import annotations

import operator
from typing import Optional

import torch
from torch import fx, nn

from dropout_fast.advise._sites import LEAF_TYPES, Layer, Placement, Site, dropout_kind, layer_kind

# Reshapes and global reductions: after them the features are dense, not maps.
_FLATTEN_FUNCS = {torch.flatten, torch.reshape, torch.mean, torch.amax}
_FLATTEN_METHODS = {"flatten", "view", "reshape", "mean", "amax"}
_TRANSPARENT_FUNCS = {torch.relu, torch.tanh, torch.sigmoid, nn.functional.relu,
                      nn.functional.gelu, nn.functional.silu, nn.functional.leaky_relu,
                      nn.functional.max_pool1d, nn.functional.max_pool2d,
                      nn.functional.avg_pool1d, nn.functional.avg_pool2d,
                      nn.functional.adaptive_avg_pool2d, operator.getitem}
_TRANSPARENT_METHODS = {"relu", "tanh", "sigmoid", "contiguous", "squeeze", "unsqueeze",
                        "permute", "transpose"}
_ADD = {operator.add, operator.iadd, torch.add}
_DROPOUT_FUNCS = {nn.functional.dropout: "elementwise", nn.functional.dropout1d: "spatial",
                  nn.functional.dropout2d: "spatial", nn.functional.dropout3d: "spatial",
                  nn.functional.alpha_dropout: "alpha", torch.dropout: "elementwise"}


class Tracer(fx.Tracer):
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


PASS = ("transparent", "flatten", "dropout")


def from_graph(graph: fx.Graph, modules: dict) -> Placement:
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
            if k in PASS:
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
        site.at_input = (site.prev is None and isinstance(src, fx.Node)
                         and src.op == "placeholder")
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
            if info[user][0] in PASS:
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
                    side = _add_side(drop_in, other[0], node, info, anc)
                    site.on_skip, site.in_branch = side == "skip", side == "branch"
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


def _add_side(drop_in: fx.Node, other: fx.Node, drop: fx.Node, info: dict, anc: dict):
    """Which side of a residual add the dropout is on: "skip" when the other
    operand is computed from the dropout's (undropped) input, "branch" when the
    dropout's input is computed from the other operand; when both come from a
    common source (a projection shortcut), the side with fewer layers is the
    skip. None when the add is not a residual join or the dropout feeds both sides."""
    if drop in anc[other]:                    # it feeds both sides: before the block
        return None
    if _reaches(drop_in, other, drop):
        return "skip"
    if other in anc[drop_in]:
        return "branch"
    common = (anc[other] | {other}) & (anc[drop_in] | {drop_in})
    common = [c for c in common if c.op != "get_attr"]
    if not common:
        return None
    index = {n: i for i, n in enumerate(anc)}
    c = max(common, key=index.__getitem__)

    def layers(n):
        return sum(1 for m in (anc[n] | {n}) - anc[c] - {c}
                   if info[m][1] is not None and info[m][0] not in PASS)

    mine, theirs = layers(drop_in), layers(other)
    return "skip" if mine < theirs else "branch" if mine > theirs else None


def _strip(node: fx.Node, info: dict) -> fx.Node:
    """`node` with transparent ops and dropouts peeled off its input side."""
    while info[node][0] in PASS and node.args and isinstance(node.args[0], fx.Node):
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
            if k in PASS:
                stack.append(user)
    return False
