"""The Generator: keys, offsets, state, pickling, spawning, the default generator."""
import pickle
import threading

import numpy as np
import pytest

import dropout_fast as df


def test_key_from_seed():
    g = df.Generator(0x0123456789ABCDEF)
    assert g.key == (0x89ABCDEF, 0x01234567) and g.offset == 0
    assert df.Generator(2**64 - 1).key == (0xFFFFFFFF, 0xFFFFFFFF)
    assert df.Generator(np.uint64(5)).seed == 5


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "1", True])
def test_bad_seed(seed):
    with pytest.raises((ValueError, TypeError), match="seed"):
        df.Generator(seed)


def test_none_seed_draws_entropy():
    assert df.Generator().seed != df.Generator().seed


def test_offset_advances_by_blocks():
    g = df.Generator(1)
    df.dropout(np.ones(17, np.float32), 0.5, rng=g)
    assert g.offset == 3
    assert g.advance(10).offset == 13
    with pytest.raises(ValueError, match="blocks"):
        g.advance(-1)


def test_state_round_trip_and_pickle():
    g = df.Generator(77).advance(5)
    a = df.dropout(np.ones(100), 0.5, rng=g)
    h = pickle.loads(pickle.dumps(g))
    assert h.state == g.state
    g2 = df.Generator(0)
    g2.state = df.Generator(77).advance(5).state
    np.testing.assert_array_equal(df.dropout(np.ones(100), 0.5, rng=g2), a)


@pytest.mark.parametrize("bad, exc", [
    ([], TypeError),
    ({"seed": 1}, ValueError),
    ({"algorithm": "mt19937", "seed": 1, "offset": 0}, ValueError),
    ({"algorithm": "philox4x32-10", "seed": -1, "offset": 0}, ValueError),
    ({"algorithm": "philox4x32-10", "seed": 1, "offset": 2**96}, ValueError),
    ({"algorithm": "philox4x32-10", "seed": 1, "offset": "0"}, TypeError),
    ({"algorithm": "philox4x32-10", "seed": 1, "offset": 0, "spawn_key": 3}, TypeError),
])
def test_malformed_state(bad, exc):
    g = df.Generator(1).advance(2)
    before = g.state
    with pytest.raises(exc, match="state|seed"):
        g.state = bad
    assert g.state == before


def test_spawn_gives_distinct_reproducible_children():
    a, b = df.Generator(5).spawn(2)
    c = df.Generator(5).spawn(3)
    assert a.seed != b.seed and c[0].seed == a.seed and c[1].seed == b.seed
    assert c[2].seed not in (a.seed, b.seed)
    g = df.Generator(5)
    first, second = g.spawn(1), g.spawn(1)
    assert first[0].seed != second[0].seed
    grandchild = a.spawn(1)[0]
    assert grandchild.seed not in (a.seed, b.seed, c[2].seed)


def test_offset_overflow():
    g = df.Generator(1)
    g.state = {**g.state, "offset": 2**96 - 1}
    with pytest.raises(OverflowError):
        df.dropout(np.ones(9), 0.5, rng=g)
    assert g.offset == 2**96 - 1


def test_manual_seed_and_default():
    df.manual_seed(123)
    a = df.dropout(np.ones(64), 0.5)
    df.manual_seed(123)
    assert df.default_generator().offset == 0
    np.testing.assert_array_equal(df.dropout(np.ones(64), 0.5), a)
    np.testing.assert_array_equal(df.dropout(np.ones(64), 0.5, rng=123), a)


def test_rng_argument_types():
    with pytest.raises(TypeError, match="rng"):
        df.dropout(np.ones(4), 0.5, rng="seed")
    with pytest.raises(TypeError, match="rng"):
        df.dropout(np.ones(4), 0.5, rng=np.random.default_rng(0))


def test_shared_generator_reserves_disjoint_ranges():
    g = df.Generator(3)
    starts, lock = [], threading.Lock()

    def work():
        for _ in range(200):
            s = g._reserve(3)
            with lock:
                starts.append(s)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(starts) == list(range(0, 3 * 1600, 3)) and g.offset == 4800
