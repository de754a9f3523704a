"""The JAX and TensorFlow peers.

JAX: ``jax.random.bernoulli`` (threefry) and ``jnp.where``, jitted, inputs
already on the device, timed to ``block_until_ready``; backward is the jitted
application of the ``jax.vjp`` closure (it holds the mask as a residual).
float64 needs ``jax_enable_x64``, which this module turns on. XLA's CPU
thread pool is sized when JAX starts, so JAX runs with its own default
thread count whatever ``--threads`` says (recorded in the JSON).

TensorFlow: ``tf.nn.experimental.stateless_dropout`` (its ``noise_shape``
covers the broadcast variants) in a ``tf.function``, backward through
``tf.GradientTape``; ops TensorFlow has no function for are not timed.
"""
from __future__ import annotations

import math

from dropout_fast._variants import SELU_ALPHA_PRIME
from dropout_fast.bench.ops import BLOCK, MC_T, P


def _jax_functions(jax, jnp):
    q = 1 - P
    bern = jax.random.bernoulli

    def drop(key, x, noise):
        return jnp.where(bern(key, q, noise), x / q, jnp.zeros((), x.dtype))

    def alpha(key, x, noise):
        a = 1.0 / math.sqrt((SELU_ALPHA_PRIME ** 2 * P + 1.0) * q)
        y = jnp.where(bern(key, q, noise), x, jnp.asarray(-SELU_ALPHA_PRIME, x.dtype))
        return y * a + SELU_ALPHA_PRIME * a * P

    def drop_block(key, x):
        n, c, h, w = x.shape
        gamma = P * h * w / (BLOCK ** 2 * (h - BLOCK + 1) * (w - BLOCK + 1))
        seeds = bern(key, gamma, (n, c, h - BLOCK + 1, w - BLOCK + 1)).astype(x.dtype)
        pad = BLOCK - 1
        seeds = jnp.pad(seeds, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        dropped = jax.lax.reduce_window(seeds, -jnp.inf, jax.lax.max, (1, 1, BLOCK, BLOCK),
                                        (1, 1, 1, 1), "VALID")
        keep = 1 - dropped
        return x * keep * (keep.size / (1e-6 + keep.sum()))

    def embedding(key, weight, ids):
        rows = bern(key, q, (weight.shape[0], 1))
        return jnp.where(rows, weight / q, 0)[ids]

    def softmax(key, s):
        return drop(key, jax.nn.softmax(s, axis=-1), s.shape)

    def mc(key, x):
        ys = jax.vmap(lambda k: drop(k, x, x.shape))(jax.random.split(key, MC_T))
        return ys.mean(0), ys.var(0)

    sigma = math.sqrt(P / (1 - P))
    return {
        "dropout": lambda k, x: drop(k, x, x.shape),
        "spatial_dropout": lambda k, x: drop(k, x, x.shape[:2] + (1,) * (x.ndim - 2)),
        "variational_dropout": lambda k, x: drop(k, x, (x.shape[0], 1, x.shape[2])),
        "drop_path": lambda k, x: drop(k, x, (x.shape[0],) + (1,) * (x.ndim - 1)),
        "drop_connect": lambda k, x: drop(k, x, x.shape),
        "alpha_dropout": lambda k, x: alpha(k, x, x.shape),
        "feature_alpha_dropout": lambda k, x: alpha(k, x, x.shape[:2] + (1,) * (x.ndim - 2)),
        "gaussian_dropout": lambda k, x: x * (1 + sigma * jax.random.normal(k, x.shape,
                                                                            x.dtype)),
        "drop_block": drop_block,
        "embedding_dropout": embedding,
        "softmax_dropout": softmax,
        "bias_dropout_add": lambda k, x, b, r: r + drop(k, x + b, x.shape),
        "mc_dropout": mc,
    }


def jax_impl(op: str, direction: str, a: dict):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    fn = _jax_functions(jax, jnp)[op]
    key = jax.random.PRNGKey(0)
    if op == "embedding_dropout":
        args, diff = [jnp.asarray(a["weight"]), jnp.asarray(a["ids"])], 1
    elif op == "bias_dropout_add":
        args, diff = [jnp.asarray(a[k]) for k in ("x", "bias", "res")], 3
    else:
        args, diff = [jnp.asarray(a["x"])], 1
    if direction == "forward":
        jf = jax.jit(fn)
        return lambda: jax.block_until_ready(jf(key, *args))

    def head(*d):
        return fn(key, *d, *args[diff:])
    # Linearized under jit: one compilation, not one per primitive. The pullback
    # comes back as a pytree of residuals, and only its application is timed.
    _, vjp = jax.jit(lambda *d: jax.vjp(head, *d))(*args[:diff])
    dy = jnp.asarray(a["dy"])
    apply = jax.jit(lambda v, g: v(g))
    return lambda: jax.block_until_ready(apply(vjp, dy))


_TF_NOISE = {
    "dropout": lambda s: None,
    "drop_connect": lambda s: None,
    "spatial_dropout": lambda s: s[:2] + (1,) * (len(s) - 2),
    "variational_dropout": lambda s: (s[0], 1, s[2]),
    "drop_path": lambda s: (s[0],) + (1,) * (len(s) - 1),
}


def tf_impl(op: str, direction: str, a: dict):
    if op not in _TF_NOISE:
        return None
    import tensorflow as tf

    x = tf.constant(a["x"])
    noise = _TF_NOISE[op](tuple(a["x"].shape))
    seed = tf.constant([1, 2], tf.int64)

    @tf.function
    def fwd(x):
        return tf.nn.experimental.stateless_dropout(x, P, seed, noise_shape=noise)

    if direction == "forward":
        return lambda: fwd(x).numpy()
    dy = tf.constant(a["dy"])

    @tf.function
    def bwd(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fwd(x)
        return tape.gradient(y, x, output_gradients=dy)
    return lambda: bwd(x, dy).numpy()
