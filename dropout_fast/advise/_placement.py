"""Where each dropout sits in a torch model.

Placement comes from a ``torch.fx`` graph when the model traces (a custom
tracer keeps transformer layers, attention and recurrent modules as leaves, so
their internals are read from the module tree instead), and otherwise from the
order of the leaf modules: their execution order when an example input is
given (forward hooks), else their registration order. The rules in
``_rules.py`` read only the `Site` records built here.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dropout_fast.advise._fx import PASS, Tracer, from_graph
from dropout_fast.advise._sites import LEAF_TYPES, Layer, Placement, Site, dropout_kind, layer_kind


def analyse(model: nn.Module, example_input: Any = None) -> Placement:
    """Find every dropout of `model` and its neighbours (see `Site`)."""
    modules = dict(model.named_modules())
    if isinstance(model, LEAF_TYPES):         # read from the module tree only
        return Placement([], "module-tree", False, modules=modules)
    shapes = _run_hooks(model, example_input) if example_input is not None else None
    try:
        graph = Tracer().trace(model)
    except Exception as exc:                  # fx raises many types for untraceable code
        note = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return _from_order(model, modules, shapes, note)
    placement = from_graph(graph, modules)
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
            if k in PASS:
                continue
            site.prev = site.prev or seq[j]
            if k not in ("batchnorm", "norm"):
                site.prev_core = seq[j]
                break
        site.at_input = site.prev is None
        rest = [s for s in seq[i + 1:] if s.kind not in PASS]
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
