"""Monte Carlo dropout: predictive mean, variance and uncertainty from T
stochastic forward passes with dropout left on (Gal & Ghahramani, "Dropout as
a Bayesian approximation: representing model uncertainty in deep learning",
ICML 2016), streamed so that T = 10,000 passes hold no more than one output.

The sampling rule (the contract a port of `mc_predict` reproduces)
------------------------------------------------------------------
``forward_fn(x, rng)`` is the user's network with its dropout drawing from
``rng`` (``dropout_fast.dropout(h, p, rng=rng)``, or layers whose ``.rng`` is
set to it). For a call ``mc_sample(forward_fn, x, T, rng=g, batch=k, stride=M)``
with S = g.seed and B = g.offset when the call starts:

1. k = min(batch or 1, T) samples per forward call, n_calls = ceil(T / k).
2. Call c = 0 .. n_calls - 1 runs ``forward_fn(X_c, G_c)``: G_c is
   ``Generator(S)`` at offset ``B + c * M`` and X_c is x repeated
   k_c = min(k, T - c * k) times along axis 0 (copy j in rows [j N, (j+1) N)).
   ``mc_offsets(T, M, base=B, batch=k)`` lists the offsets.
3. Sample t = c * k + j is rows [j R, (j+1) R) of call c's output, R = its
   rows / k_c. Unbatched (batch None or 1), sample t is exactly
   ``forward_fn(x, Generator(S) at B + t * M)``: any sample can be regenerated
   alone. Batched samples are different draws (each row block of a tiled mask)
   with the same distribution; they coincide with the unbatched ones when the
   network has a single dropout call over a multiple of 8 elements per sample.
4. M (the stride, counter blocks per call) is ``stride=`` when given, else
   the number of blocks call 0 used (it must use some: RuntimeError
   otherwise). A call that uses more than M blocks is a RuntimeError (its
   masks would overlap the next call's). Once call 0 has gone through, g
   takes the run's blocks: its offset ends at B + n_calls * M (an error in
   call 0, a bad output for example, leaves g where it was).
5. Samples are accumulated in order t = 0 .. T-1. Per element, in double:
   ``d = s - mean; mean = mean + d / (t + 1); m2 = m2 + d * (s - mean)``
   (Welford 1962; C kernel df_welford_update_*). Every operation is IEEE
   and correctly rounded, so mean and m2 are the same bits in any port that
   does them in this order on the same outputs. variance = m2 / (T - ddof).
6. Class probabilities (``output="probs"``: the last axis of each output is
   a distribution; ``"logits"``: p = softmax in double, ``z = l - max(l)``,
   ``p = exp(z) / sum(exp(z))``). Per sample and row, the entropy
   ``H(p) = -sum_k p_k log p_k`` (0 log 0 = 0; numpy's sum over k; clipped
   below at 0) is accumulated by the same Welford update. Predictive entropy
   = H(mean p); expected entropy = mean_t H(p_t); mutual information (BALD,
   Houlsby et al. 2011) = max(predictive - expected, 0); predicted class =
   argmax of mean p (the first on ties). exp and log come from the platform's
   libm, so these agree across ports to rounding, not bit for bit.
"""
from __future__ import annotations

import operator
from typing import Callable, NamedTuple, Optional

import numpy as np

from dropout_fast import _config
from dropout_fast._generator import Generator, RNGLike, resolve_rng
from dropout_fast.api import check_array

__all__ = ["Welford", "MCStats", "MCPrediction", "MCDropout", "mc_sample", "mc_predict",
           "mc_offsets", "entropy", "mutual_information"]

OUTPUTS = (None, "probs", "logits")


# --------------------------------------------------------------------------- checks
def _count(value, name: str, least: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an integer, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None
    if value < least:
        raise ValueError(f"{name}: expected an integer >= {least}, got {value}")
    return value


def _check_output(output):
    if output not in OUTPUTS:
        raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
    return output


def _tolerance(dtype, atol) -> float:
    if atol is None:
        return 1e-3 if dtype == np.float32 else 1e-6
    atol = float(atol)
    if not atol >= 0.0:
        raise ValueError(f"atol: expected a non-negative number, got {atol}")
    return atol


def _check_probs(p, name: str, atol) -> np.ndarray:
    """p as float64 probabilities along the last axis, or ValueError/TypeError naming `name`."""
    p = np.asarray(p)
    if p.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real probabilities, got dtype {p.dtype}")
    if p.ndim == 0:
        raise ValueError(f"{name}: expected probabilities along a last axis, got a scalar")
    tol = _tolerance(p.dtype, atol)
    q = p.astype(np.float64, copy=False)
    if q.size:
        if np.isnan(q).any():
            raise ValueError(f"{name}: probabilities contain NaN")
        if q.min() < 0.0:
            raise ValueError(f"{name}: probabilities must be non-negative, min is {q.min()}")
        worst = np.abs(q.sum(axis=-1) - 1.0).max() if q.shape[-1] else 1.0
        if not worst <= tol:
            raise ValueError(f"{name}: rows along the last axis must sum to 1 within {tol}, "
                             f"off by up to {worst}")
    return q


def _entropy(q: np.ndarray) -> np.ndarray:
    """-sum p log p over the last axis of float64 q, 0 log 0 = 0, clipped below at 0."""
    lg = np.zeros_like(q)
    np.log(q, out=lg, where=q > 0.0)
    return np.maximum(0.0 - np.sum(q * lg, axis=-1), 0.0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - np.max(logits, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


# --------------------------------------------------------------------------- helpers
def entropy(p, *, atol: Optional[float] = None) -> np.ndarray:
    """Shannon entropy (nats) of the distributions along the last axis.

    Parameters
    ----------
    p : array_like of shape (..., K)
        Probabilities: non-negative, each row summing to 1 within `atol`.
    atol : float, optional
        Tolerance on the row sums; default 1e-3 for float32 input, else 1e-6.

    Returns
    -------
    ndarray of float64, shape (...)
        ``-sum_k p_k log p_k``, with 0 log 0 = 0, clipped below at 0.

    Raises
    ------
    ValueError
        Negative entries, NaN, or a row that does not sum to 1.

    Examples
    --------
    >>> entropy([[0.5, 0.5], [1.0, 0.0]]).round(4).tolist()
    [0.6931, 0.0]
    """
    return _entropy(_check_probs(p, "p", atol))


def mutual_information(samples, *, atol: Optional[float] = None) -> np.ndarray:
    """BALD mutual information of stacked samples: H[mean_t p_t] - mean_t H[p_t].

    The non-streaming form of `MCStats.mutual_information`, for samples that fit
    in memory (Houlsby et al., "Bayesian active learning for classification and
    preference learning", 2011).

    Parameters
    ----------
    samples : array_like of shape (T, ..., K)
        T probability samples.
    atol : float, optional
        See `entropy`.

    Returns
    -------
    ndarray of float64, shape (...)
        Clipped below at 0.

    Examples
    --------
    >>> mutual_information([[[1.0, 0.0]], [[0.0, 1.0]]]).round(4).tolist()
    [0.6931]
    """
    q = _check_probs(samples, "samples", atol)
    if q.ndim < 2 or q.shape[0] < 1:
        raise ValueError(f"samples: expected shape (T, ..., K) with T >= 1, got {q.shape}")
    return np.maximum(_entropy(q.mean(axis=0)) - _entropy(q).mean(axis=0), 0.0)


def mc_offsets(T: int, stride: int, *, base: int = 0, batch: Optional[int] = None) -> list:
    """The Generator offset of each forward call of an MC run (rule 2 of the module doc).

    Parameters
    ----------
    T : int
        Number of samples, >= 1.
    stride : int
        Counter blocks per forward call (M), >= 1.
    base : int, default 0
        The Generator's offset when the run starts.
    batch : int, optional
        Samples per call (k); None means 1.

    Returns
    -------
    list of int
        ``base + c * stride`` for c in range(ceil(T / k)); call c holds samples
        c*k .. min((c+1)*k, T) - 1.

    Examples
    --------
    >>> mc_offsets(5, 12, base=100, batch=2)
    [100, 112, 124]
    """
    T, stride = _count(T, "T"), _count(stride, "stride")
    base = _count(base, "base", 0)
    k = 1 if batch is None else min(_count(batch, "batch"), T)
    return [base + c * stride for c in range(-(-T // k))]


# --------------------------------------------------------------------------- accumulators
class Welford:
    """Streaming mean and variance of same-shaped samples, in float64 (Welford 1962).

    Each update is one pass of the C kernel over the running mean and sum of
    squared deviations (m2); the samples themselves are not kept.

    Parameters
    ----------
    shape : tuple of int
        Shape of one sample.

    Attributes
    ----------
    shape : tuple of int
    count : int
        Samples added so far.

    Examples
    --------
    >>> import numpy as np
    >>> w = Welford((2,))
    >>> w.update(np.array([1.0, 2.0])); w.update(np.array([3.0, 6.0]))
    >>> w.mean.tolist(), w.variance().tolist(), w.variance(ddof=1).tolist()
    ([2.0, 4.0], [1.0, 4.0], [2.0, 8.0])
    """

    def __init__(self, shape):
        try:
            shape = ((operator.index(shape),) if np.ndim(shape) == 0
                     else tuple(operator.index(d) for d in shape))
        except TypeError:
            raise TypeError(f"shape: expected a tuple of ints, got {shape!r}") from None
        if any(d < 0 for d in shape):
            raise ValueError(f"shape: extents must be non-negative, got {shape}")
        self.shape = shape
        self.count = 0
        self._mean = np.zeros(shape, np.float64)
        self._m2 = np.zeros(shape, np.float64)

    def _add(self, flat: np.ndarray, k: int) -> None:
        _config.kernels.welford_update(flat, self._mean.reshape(-1), self._m2.reshape(-1),
                                       self.count, _config.nthreads, _config.isa)
        self.count += k

    def update(self, sample) -> None:
        """Add one sample of `shape` (float32 or float64)."""
        sample = check_array(sample, "sample")
        if sample.shape != self.shape:
            raise ValueError(f"sample: expected shape {self.shape}, got {sample.shape}")
        self._add(np.ascontiguousarray(sample).reshape(-1), 1)

    def update_many(self, samples) -> None:
        """Add k samples stacked along a new first axis: shape (k, *shape), in order."""
        samples = check_array(samples, "samples")
        if samples.shape[1:] != self.shape or samples.ndim != len(self.shape) + 1:
            raise ValueError(f"samples: expected shape (k, *{self.shape}), got {samples.shape}")
        if samples.shape[0]:
            self._add(np.ascontiguousarray(samples).reshape(-1), samples.shape[0])

    @property
    def mean(self) -> np.ndarray:
        """The running mean (float64, a read-only view)."""
        v = self._mean.view()
        v.flags.writeable = False
        return v

    @property
    def m2(self) -> np.ndarray:
        """The running sum of squared deviations from the mean (float64, read-only view)."""
        v = self._m2.view()
        v.flags.writeable = False
        return v

    def variance(self, ddof: int = 0) -> np.ndarray:
        """m2 / (count - ddof); needs count > ddof (ValueError otherwise)."""
        ddof = _count(ddof, "ddof", 0)
        if self.count - ddof < 1:
            raise ValueError(f"ddof: needs count > ddof, got count {self.count} and ddof {ddof}")
        var = np.empty(self.shape, np.float64)
        _config.kernels.welford_var(self._m2.reshape(-1), var.reshape(-1), self.count, ddof,
                                    _config.nthreads, _config.isa)
        return var

    def std(self, ddof: int = 0) -> np.ndarray:
        """sqrt(variance(ddof))."""
        return np.sqrt(self.variance(ddof))

    def __repr__(self) -> str:
        return f"Welford(shape={self.shape}, count={self.count})"


class MCStats:
    """Streaming statistics of an MC dropout run (returned by `mc_sample`).

    Attributes
    ----------
    output : Welford
        Mean and variance of the outputs (of the probabilities with output="logits").
    entropies : Welford or None
        Of the per-sample entropies H(p_t) (output "probs" or "logits"), else None.
    count : int
        Samples so far.
    seed, base, stride, batch : int
        What regenerates any sample (module docstring, rules 2-4).
    """

    def __init__(self, shape, output=None, *, seed=0, base=0, stride=0, batch=1, atol=None):
        self.kind = _check_output(output)
        if self.kind is not None and len(shape) == 0:
            raise ValueError("forward_fn: class probabilities need a last axis, got scalars")
        self.output = Welford(shape)
        self.entropies = Welford(shape[:-1]) if self.kind else None
        self.seed, self.base, self.stride, self.batch = seed, base, stride, batch
        self.atol = atol

    @property
    def count(self) -> int:
        return self.output.count

    def add(self, samples) -> None:
        """Add k samples stacked along a new first axis, in order (rule 5 and 6)."""
        samples = check_array(samples, "forward_fn")
        if samples.shape[1:] != self.output.shape:
            raise ValueError(f"forward_fn: expected outputs of shape {self.output.shape} per "
                             f"sample, got {samples.shape[1:]}")
        if self.kind == "logits":
            samples = _softmax(samples)
        elif self.kind == "probs":
            _check_probs(samples, "forward_fn", self.atol)
        self.output.update_many(samples)
        if self.kind:
            q = samples.astype(np.float64, copy=False)
            self.entropies.update_many(np.ascontiguousarray(_entropy(q)))

    @property
    def mean(self) -> np.ndarray:
        """Mean output (float64), or mean probability."""
        return self.output.mean

    def variance(self, ddof: int = 0) -> np.ndarray:
        """Per-element variance of the outputs over the samples."""
        return self.output.variance(ddof)

    def std(self, ddof: int = 0) -> np.ndarray:
        return self.output.std(ddof)

    def _need_probs(self, what: str):
        if not self.kind:
            raise ValueError(f"{what}: needs output='probs' or 'logits' in mc_sample")

    @property
    def predictive_entropy(self) -> np.ndarray:
        """H[mean_t p_t] per row (float64)."""
        self._need_probs("predictive_entropy")
        return _entropy(np.asarray(self.output.mean))

    @property
    def expected_entropy(self) -> np.ndarray:
        """mean_t H[p_t] per row (float64)."""
        self._need_probs("expected_entropy")
        return np.array(self.entropies.mean)

    @property
    def mutual_information(self) -> np.ndarray:
        """BALD: predictive minus expected entropy, clipped below at 0."""
        return np.maximum(self.predictive_entropy - self.expected_entropy, 0.0)

    @property
    def predicted_class(self) -> np.ndarray:
        """argmax of the mean probability along the last axis (the first on ties)."""
        self._need_probs("predicted_class")
        return np.argmax(self.output.mean, axis=-1)

    def offsets(self, T: Optional[int] = None) -> list:
        """The offsets of the forward calls so far (see `mc_offsets`)."""
        return mc_offsets(T or self.count, self.stride, base=self.base, batch=self.batch)

    def __repr__(self) -> str:
        return (f"MCStats(shape={self.output.shape}, count={self.count}, output={self.kind!r}, "
                f"seed={self.seed}, base={self.base}, stride={self.stride}, batch={self.batch})")


class MCPrediction(NamedTuple):
    """What `mc_predict` returns; rows are the input's rows."""
    mean: np.ndarray                # (N, K) mean probability, float64
    predicted_class: np.ndarray     # (N,) argmax of mean
    predictive_entropy: np.ndarray  # (N,) H[mean p]
    mutual_information: np.ndarray  # (N,) H[mean p] - mean H[p_t], >= 0
    variance: np.ndarray            # (N, K) per-class variance of p over samples (ddof 0)


# --------------------------------------------------------------------------- the sampler
def mc_sample(forward_fn: Callable, x, T: int, *, rng: RNGLike = None,
              batch: Optional[int] = None, stride: Optional[int] = None, output=None,
              atol: Optional[float] = None) -> MCStats:
    """Run T stochastic forward passes and stream their statistics.

    Parameters
    ----------
    forward_fn : callable ``forward_fn(x, rng) -> ndarray``
        The network in training mode, its dropout drawing from the Generator
        `rng` it is given (``dropout_fast.dropout(h, p, rng=rng)``).
    x : ndarray, shape (N, ...)
        The input batch.
    T : int
        Number of samples, >= 1. Memory does not grow with T.
    rng : Generator, int or None
        Where the masks come from; sample offsets follow the module docstring's
        rule, and the Generator ends advanced past them.
    batch : int, optional
        Run k samples per call by tiling x k times along axis 0 (bigger matmuls).
    stride : int, optional
        Counter blocks reserved per call; default: what the first call used.
    output : {None, "probs", "logits"}
        None: statistics of the raw outputs. "probs": outputs are distributions
        along their last axis (checked); "logits": softmax first. Both add the
        entropy statistics.
    atol : float, optional
        Tolerance of the probability check (see `entropy`).

    Returns
    -------
    MCStats

    Examples
    --------
    >>> import numpy as np, dropout_fast as df
    >>> f = lambda x, rng: df.dropout(x, 0.5, rng=rng)
    >>> s = mc_sample(f, np.ones(16), 200, rng=0)
    >>> s.count, s.stride, bool(abs(s.mean.mean() - 1) < 0.1)
    (200, 2, True)
    >>> bool(abs(s.variance().mean() - 1) < 0.2)   # the variance of x * Bernoulli(0.5) / 0.5
    True
    """
    if not callable(forward_fn):
        raise TypeError(f"forward_fn: expected a callable forward_fn(x, rng), "
                        f"got {type(forward_fn).__name__}")
    T = _count(T, "T")
    k = 1 if batch is None else min(_count(batch, "batch"), T)
    _check_output(output)
    _tolerance(np.float64, atol)
    if stride is not None:
        stride = _count(stride, "stride")
    if k > 1:
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("x: batch=k tiles x along axis 0, so x needs at least one axis")
        xt = np.concatenate([x] * k, axis=0)
    else:
        xt = x
    gen = resolve_rng(rng)
    ncalls = -(-T // k)
    base = gen.offset
    stats = None
    for c in range(ncalls):
        kc = min(k, T - c * k)
        xc = xt if kc == k else xt[:kc * x.shape[0]]
        start = base + c * (stride or 0)
        g = Generator(gen.seed).advance(start)
        y = check_array(forward_fn(xc, g), "forward_fn")
        used = g.offset - start
        if c == 0 and stride is None:  # the first call sets the stride
            if used == 0 and y.size:  # an empty batch draws nothing, and needs nothing
                raise RuntimeError("forward_fn drew no counter blocks from the rng it was "
                                   "given: pass rng=rng to its dropout calls")
            stride = used
        elif used > stride:
            raise RuntimeError(f"forward_fn drew {used} counter blocks in call {c}, more than "
                               f"the stride {stride}: its masks would overlap the next call's")
        if kc > 1:
            if y.ndim == 0 or y.shape[0] % kc:
                raise ValueError(f"forward_fn: with batch={k}, outputs need a first axis that "
                                 f"splits into {kc} samples, got shape {y.shape}")
            y = y.reshape((kc, y.shape[0] // kc) + y.shape[1:])
        else:
            y = y[np.newaxis]
        if stats is None:
            stats = MCStats(y.shape[1:], output, seed=gen.seed, base=base, stride=stride,
                            batch=k, atol=atol)
        stats.add(y)
        if c == 0:  # call 0 went through: take the whole run's counter blocks
            if gen._reserve(ncalls * stride) != base:
                raise RuntimeError("rng: used elsewhere while mc_sample ran its first call")
    return stats


def mc_predict(forward_fn: Callable, x, T: int, *, rng: RNGLike = None,
               batch: Optional[int] = None, stride: Optional[int] = None,
               output: str = "probs", atol: Optional[float] = None) -> MCPrediction:
    """MC dropout prediction: mean probability, class, predictive entropy and BALD.

    Runs `mc_sample` (same arguments and sampling rule) with class-probability
    outputs of shape (N, K) per sample.

    Parameters
    ----------
    forward_fn, x, T, rng, batch, stride, atol
        See `mc_sample`.
    output : {"probs", "logits"}, default "probs"
        What forward_fn returns along its last axis.

    Returns
    -------
    MCPrediction
        ``(mean, predicted_class, predictive_entropy, mutual_information, variance)``.

    Examples
    --------
    >>> import numpy as np, dropout_fast as df
    >>> W = np.array([[2.0, -2.0], [-1.0, 1.0]])
    >>> f = lambda x, rng: df.dropout(x, 0.3, rng=rng) @ W
    >>> r = mc_predict(f, np.eye(2), 100, rng=0, output="logits")
    >>> r.predicted_class.tolist(), bool(np.all(r.mutual_information >= 0))
    ([0, 1], True)
    """
    if output not in ("probs", "logits"):
        raise ValueError(f"output: expected 'probs' or 'logits', got {output!r}")
    s = mc_sample(forward_fn, x, T, rng=rng, batch=batch, stride=stride, output=output, atol=atol)
    return MCPrediction(np.array(s.mean), s.predicted_class, s.predictive_entropy,
                        s.mutual_information, s.variance())


class MCDropout:
    """A network wrapped for MC dropout prediction (numpy terms).

    Parameters
    ----------
    forward_fn : callable ``forward_fn(x, rng) -> ndarray``
        See `mc_sample`.
    T : int, default 100
        Samples per prediction.
    rng : Generator, int or None
        An int seeds a Generator owned by the wrapper; None uses the default
        generator at each call. Each prediction advances it (module docstring).
    batch : int, optional
        Samples per forward call (see `mc_sample`).
    output : {"probs", "logits"}, default "probs"

    Examples
    --------
    >>> import numpy as np, dropout_fast as df
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> model = MCDropout(lambda x, rng: df.dropout(x, 0.2, rng=rng) @ W, T=50, rng=0,
    ...                   output="logits")
    >>> model.predict(np.array([[3.0, 0.0]])).predicted_class.tolist()
    [0]
    """

    def __init__(self, forward_fn: Callable, T: int = 100, *, rng: RNGLike = None,
                 batch: Optional[int] = None, output: str = "probs"):
        if not callable(forward_fn):
            raise TypeError(f"forward_fn: expected a callable, got {type(forward_fn).__name__}")
        if output not in ("probs", "logits"):
            raise ValueError(f"output: expected 'probs' or 'logits', got {output!r}")
        self.forward_fn, self.T, self.output = forward_fn, _count(T, "T"), output
        self.batch = None if batch is None else _count(batch, "batch")
        self.rng = resolve_rng(rng) if rng is not None else None

    def sample(self, x) -> MCStats:
        """The streaming statistics of T passes on x (`mc_sample`)."""
        return mc_sample(self.forward_fn, x, self.T, rng=self.rng, batch=self.batch,
                         output=self.output)

    def predict(self, x) -> MCPrediction:
        """`mc_predict` with the wrapper's settings."""
        return mc_predict(self.forward_fn, x, self.T, rng=self.rng, batch=self.batch,
                          output=self.output)

    __call__ = predict

    def __repr__(self) -> str:
        return f"MCDropout(T={self.T}, batch={self.batch}, output={self.output!r})"
