"""Fuzz the public Python API of dropout_fast with atheris (libFuzzer for Python).

Each input picks an op and builds its arguments from the fuzzer's bytes: arrays
of odd shapes (0 to 4 dims, size-0 axes), dtypes (float16/32/64, big-endian,
ints, bools, complex, objects), layouts (negative strides, transposed,
broadcast, read-only, misaligned), NaN/inf values; p, rng, training and option
values that are right, wrong or of the wrong type; `out` arrays that are x,
a fresh array, a wrong one, read-only, broadcast or partly overlapping x; and
masks that are right, stale or of another op. The only exceptions allowed are
the documented ones: ValueError and TypeError (bad arguments) and the
OverflowError of a Generator whose offset would pass 2**96. Anything else, a
crash or a hang (libFuzzer's -timeout) fails. Successful calls must also leave
their inputs untouched when `out` does not overlap them.

    python tests/fuzz/fuzz_api.py -max_total_time=60 -seed=1   # tests/test_fuzz.py runs this
"""
import sys

import atheris
import numpy as np

with atheris.instrument_imports(include=["dropout_fast"]):
    import dropout_fast as df
    from dropout_fast import mc

ALLOWED = (ValueError, TypeError)
DTYPES = [np.float32, np.float64, np.float32, np.float64, np.float16, ">f4", ">f8", np.int32,
          np.uint8, np.bool_, np.complex64, object]


class Ctx:
    """The bytes of one input and the input arrays it made (checked afterwards)."""

    def __init__(self, data: bytes):
        self.f = atheris.FuzzedDataProvider(data)
        self.inputs = []  # (array, snapshot) of every ndarray handed to the op as input
        self.aliased = False  # some out= overlaps an input: inputs may change
        self.shifted = {}  # id(input) -> a view of its buffer shifted by one element

    def int(self, lo, hi):
        return self.f.ConsumeIntInRange(lo, hi)

    def pick(self, options):
        return options[self.int(0, len(options) - 1)]

    def bool(self):
        return self.f.ConsumeBool()

    # ------------------------------------------------------------------ values
    def shape(self, max_nd=4, max_side=5):
        return tuple(self.int(0, max_side) for _ in range(self.int(0, max_nd)))

    def array(self, shape=None, dtype=None, float_only=False):
        """An ndarray of `shape` (or a fuzzed one), fuzzed dtype and layout."""
        shape = self.shape() if shape is None else shape
        dtype = np.dtype(dtype if dtype is not None else
                         self.pick(DTYPES[:4] if float_only else DTYPES))
        n = int(np.prod(shape, dtype=np.int64))
        vals = [self.f.ConsumeRegularFloat() if self.bool() else
                self.pick([np.nan, np.inf, -np.inf, -0.0, 5e-324, 1e308, 0.0])
                for _ in range(min(n, 8))]
        base = np.resize(np.array(vals or [0.0]), n).reshape(shape)
        with np.errstate(all="ignore"):
            a = base.astype(dtype) if dtype != object else base.astype(object)
        kind = self.int(0, 6)
        if kind == 1 and a.ndim:  # negative strides
            a = np.ascontiguousarray(np.flip(a, axis=-1))[..., ::-1]
        elif kind == 2 and a.ndim >= 2:  # transposed
            a = np.ascontiguousarray(a.T).T
        elif kind == 3 and a.ndim and a.shape[-1] == 1:  # broadcast (read-only, zero strides)
            a = np.broadcast_to(a, a.shape[:-1] + (self.int(0, 6),))
        elif kind == 4:  # read-only
            a = a.copy()
            a.flags.writeable = False
        elif kind == 5 and a.dtype.kind == "f" and a.size:  # misaligned
            buf = np.zeros(a.nbytes + 1, np.uint8)[1:]
            m = buf.view(a.dtype).reshape(a.shape)
            m[...] = a
            a = m
        elif kind == 6 and a.size and a.dtype != object:  # a buffer one element longer
            buf = np.empty(a.size + 1, a.dtype)
            buf[:-1] = a.reshape(-1)
            a = buf[:-1].reshape(a.shape)
            self.shifted[id(a)] = buf[1:].reshape(a.shape)  # overlaps a but for one element
        self.inputs.append((a, a.copy()))
        return a

    def x(self, shape=None, float_only=False):
        """Mostly an ndarray; sometimes a list, a scalar, None or a string."""
        k = self.int(0, 15)
        if k == 0:
            return None
        if k == 1:
            return "x"
        if k == 2:
            return [[1.0, 2.0], [3.0]] if self.bool() else [1.0, -2.0, 3.0]
        if k == 3:
            return self.f.ConsumeRegularFloat()
        return self.array(shape, float_only=float_only)

    def p(self):
        k = self.int(0, 9)
        if k < 5:
            return self.f.ConsumeProbability()
        return self.pick([0.0, 1.0, -0.0, 1 - 2**-53, 5e-324, -1e-9, 1.5, np.nan, np.inf, True,
                          None, "0.5", 1, np.float32(0.5), np.float16(0.1), 2**70, 0.5j,
                          np.array(0.5), np.array([0.5])] + [self.f.ConsumeFloat()])

    def rng(self):
        return self.pick([None, 0, 1, 2**64 - 1, 2**64, -1, 1.5, "seed", True, np.int64(3),
                          np.uint64(2**63), df.Generator(7),
                          df.Generator(9).advance(2**96 - 1 - self.int(0, 3)),
                          df.Generator(5).advance(2**64 - self.int(0, 8))])

    def option(self, good):
        """A right value of an option most of the time, else junk."""
        if self.int(0, 3):
            return self.pick(good)
        return self.pick([None, "", "bogus", -1, 2**63, 1.5, True, [1], (1, 2), object()])

    def out(self, x):
        if not isinstance(x, np.ndarray) or self.int(0, 2) == 0:
            return None
        k = self.int(0, 8)
        if k == 0:
            self.aliased = True
            return x
        if k == 1:
            return np.empty_like(x)
        if k == 2:  # a strided view
            return np.empty(x.shape + (2,), x.dtype)[..., 0]
        if k == 3 and x.size:  # overlaps x: reversed, or shifted by one element
            self.aliased = True
            return self.shifted.get(id(x), x.reshape(-1)[::-1].reshape(x.shape))
        if k == 4:
            o = np.empty_like(x)
            o.flags.writeable = False
            return o
        if k == 5 and x.ndim:
            return np.broadcast_to(np.empty(x.shape[-1:], x.dtype), x.shape)
        if k == 6:
            return np.empty(x.shape + (1,), x.dtype)
        if k == 7:
            return np.empty(x.shape, np.float16 if x.dtype != np.float16 else np.float32)
        return [0.0]

    def mask(self, good):
        return good if self.int(0, 4) else self.pick([None, "mask", object(), last_mask[0]])


last_mask = [None]  # a mask from an earlier input: stale, maybe of another op


def _fb(c, forward, backward, x, **kw):
    _, m = forward(x, c.p(), rng=c.rng(), out=c.out(x), **kw)
    last_mask[0] = m
    dy = c.x(getattr(x, "shape", None), float_only=True)
    return backward(dy, c.mask(m), out=c.out(dy))


VARIANT_OPTS = {
    "dropout": lambda c: {"noise_shape": c.option([None, (1,), (2, 1), (1, 1, 1)])},
    "spatial_dropout": lambda c: {"data_format": c.option(["channels_first", "channels_last"])},
    "variational_dropout": lambda c: {"time_axis": c.option([0, 1, -1, 2, 5, -5])},
    "drop_path": lambda c: {"mode": c.option(["row", "batch"]),
                            "scale_by_keep": c.option([True, False])},
    "drop_connect": lambda c: {}, "alpha_dropout": lambda c: {},
    "feature_alpha_dropout": lambda c: {}, "embedding_dropout": lambda c: {},
}


def op_variant(c):
    name = c.option(list(VARIANT_OPTS))
    opts = VARIANT_OPTS.get(name, lambda c: {})(c)
    x = c.x()
    if c.bool():
        fn = {"dropout": df.dropout, "spatial_dropout": df.spatial_dropout,
              "variational_dropout": df.variational_dropout, "drop_path": df.drop_path,
              "drop_connect": df.drop_connect, "alpha_dropout": df.alpha_dropout,
              "feature_alpha_dropout": df.feature_alpha_dropout}.get(name, df.dropout)
        return fn(x, c.p(), training=c.option([True, False]), rng=c.rng(), out=c.out(x), **opts)
    mode = c.option(["bits", "recompute"])
    return _fb(c, lambda x, p, **kw: df.forward(name, x, p, mask=mode, **kw, **opts),
               df.backward, x)


def op_channels(c):
    fn = c.pick([df.dropout1d, df.dropout2d, df.dropout3d])
    x = c.x()
    return fn(x, c.p(), training=c.option([True, False]), rng=c.rng(), out=c.out(x))


def op_embedding(c):
    w = c.x((c.int(0, 6), c.int(0, 4)) if c.bool() else None)
    ids = c.pick([None, [0, 1], np.array([[0, 5]]), np.array([-1]), np.array([0.5]),
                  np.zeros((2, 0), int), np.array([1, 2], np.uint8), "ids"])
    if c.bool():
        return df.embedding_dropout(w, ids, c.p(), training=c.option([True, False]),
                                    rng=c.rng())
    out, m = df.embedding_dropout_forward(w, ids, c.p(), rng=c.rng(),
                                          mask=c.option(["bits", "recompute"]))
    last_mask[0] = m
    return df.embedding_dropout_backward(c.x(out.shape, float_only=True), ids, c.mask(m))


def op_gaussian(c):
    x = c.x()
    if c.bool():
        return df.gaussian_dropout(x, c.p(), training=c.option([True, False]), rng=c.rng(),
                                   out=c.out(x))
    noise = c.option(["recompute", "store"])
    return _fb(c, lambda x, p, **kw: df.gaussian_dropout_forward(x, p, noise=noise, **kw),
               df.gaussian_dropout_backward, x)


def op_drop_block(c):
    shape = (c.int(0, 2), c.int(0, 3)) + tuple(c.int(0, 6) for _ in range(c.int(1, 3)))
    x = c.x(shape if c.int(0, 3) else None)
    bs = c.option([1, 2, 3, 7, 0])
    kw = {"data_format": c.option(["channels_first", "channels_last"]),
          "eps": c.option([1e-6, 0.0, 1.0, -1.0, np.nan])}
    k = c.int(0, 2)
    if k == 0:
        return df.drop_block(x, c.p(), bs, training=c.option([True, False]), rng=c.rng(),
                             out=c.out(x), **kw)
    if k == 1:
        fn = c.pick([df.drop_block2d, df.drop_block3d])
        inplace = c.option([False, True])
        c.aliased = bool(inplace)  # torchvision's inplace=True writes into the input
        return fn(x, c.p(), bs, inplace, kw["eps"], c.option([True, False]), rng=c.rng())
    mode = c.option(["bits", "recompute"])
    return _fb(c, lambda x, p, **k2: df.drop_block_forward(x, p, bs, mask=mode, **k2, **kw),
               df.drop_block_backward, x)


def op_softmax(c):
    s = c.x()
    nd = getattr(s, "ndim", 1)
    kw = {"axis": c.option([-1, 0, 1, -2, nd, -nd - 1]),
          "attn_mask": c.pick([None, None, c.x(), np.array(True), np.array([[True, False]]),
                               np.array([-np.inf, 0.0], np.float32)]),
          "is_causal": c.option([False, True])}
    k = c.int(0, 2)
    if k == 0:
        return df.softmax(s, out=c.out(s), **kw)
    if k == 1:
        return df.softmax_dropout(s, c.p(), rng=c.rng(), training=c.option([True, False]),
                                  out=c.out(s), **kw)
    mode, bits = c.option(["store", "recompute"]), c.option([False, True])
    y, m = df.softmax_dropout_forward(s, c.p(), rng=c.rng(), out=c.out(s), mode=mode, bits=bits,
                                      **kw)
    last_mask[0] = m
    dy = c.x(y.shape, float_only=True)
    return df.softmax_dropout_backward(dy, c.mask(m), scores=c.pick([None, s, dy]),
                                       out=c.out(dy))


def op_bias_dropout_add(c):
    x = c.x()
    shape = getattr(x, "shape", (3,))
    bias = c.pick([None, c.x(shape[-1:]), c.x()])
    res = c.pick([c.x(shape), c.x(shape[1:]), c.x()])
    if c.bool():
        return df.bias_dropout_add(x, bias, res, c.p(), rng=c.rng(),
                                   training=c.option([True, False]), out=c.out(x))
    y, m = df.bias_dropout_add_forward(x, bias, res, c.p(), rng=c.rng(), out=c.out(x),
                                       mask=c.option(["bits", "recompute"]))
    last_mask[0] = m
    dy = c.x(y.shape, float_only=True)
    return df.bias_dropout_add_backward(dy, c.mask(m), out=c.out(dy))


def op_generator(c):
    g = c.rng() if c.bool() else df.Generator(c.option([0, 2**64 - 1, 2**64, -3, None]))
    if not isinstance(g, df.Generator):
        return df.Generator(g)
    k = c.int(0, 3)
    if k == 0:
        return g.advance(c.option([0, 1, 2**95, 2**96, -1, 1.0]))
    if k == 1:
        return g.spawn(c.pick([0, 2, -1, 1.5, None, "2"]))  # not option(): 2**63 children
    if k == 2:
        g.state = c.pick([g.state, {}, {"algorithm": "philox4x32-10", "seed": 1, "offset": -1},
                          {"algorithm": "x", "seed": 1, "offset": 0}, "state",
                          {"algorithm": "philox4x32-10", "seed": 1, "offset": 2**96}])
        return g
    return df.philox4x32(c.pick([[0, 0, 0, 0], [[1, 2, 3, 4]], [1, 2], [-1, 0, 0, 0],
                                 np.zeros((2, 4), np.uint64), [0.5] * 4]),
                         c.pick([[0, 0], [1, 2, 3], [[1, 2]], [2**32, 0]]),
                         c.option([10, 7, 0, 16, 17, -1]))


def op_layers(c):
    layer = c.pick([lambda: df.Dropout(c.p()), lambda: df.AlphaDropout(c.p()),
                    lambda: df.SpatialDropout(c.p()), lambda: df.GaussianDropout(c.p()),
                    lambda: df.DropBlock(c.p(), c.option([1, 2, 0])),
                    lambda: df.SoftmaxDropout(c.p()), lambda: df.DropPath(c.p()),
                    lambda: df.RecurrentDropout(c.p())])()
    if c.bool():
        layer.eval()
    x = c.x()
    layer.forward(x)
    return layer.backward(c.x(getattr(x, "shape", None), float_only=True))


def op_mc(c):
    w = np.ones((3, 2), np.float32)

    def forward(x, rng):
        return df.dropout(np.asarray(x, np.float32) @ w, 0.5, rng=rng)
    # T and batch from short lists: option()'s 2**63 would be a legitimate, endless run.
    return mc.mc_sample(forward, c.x((c.int(0, 3), 3)), c.pick([1, 3, 0, -1, 2.5, None, "3"]),
                        rng=c.rng(), batch=c.pick([None, 1, 2, 0, -2, 1.5]))


OPS = [op_variant, op_channels, op_embedding, op_gaussian, op_drop_block, op_softmax,
       op_bias_dropout_add, op_generator, op_layers, op_mc]


def TestOneInput(data: bytes) -> None:
    c = Ctx(data)
    op = c.pick(OPS)
    try:
        op(c)
    except ALLOWED:
        pass
    except OverflowError as e:
        if "2**96" not in str(e):
            raise
    if not c.aliased:
        for a, snap in c.inputs:
            if a.dtype == object:
                continue
            assert a.tobytes() == snap.tobytes(), f"{op.__name__} modified an input"


def main():
    np.seterr(all="ignore")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
