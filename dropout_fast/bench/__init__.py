"""``python -m dropout_fast bench``: every dropout_fast operation, forward and
backward, against every installed peer and against this machine's memory
bandwidth, measured in the same run.

Modules: `peers` (which peers are installed, versions, threads), `ops` (the
operations: shapes, bytes moved, dropout_fast's calls), `impl_numpy`,
`impl_torch`, `impl_jax_tf` (the peers' versions of each op), `timing`
(warm-up, A/B-interleaved rounds, median and spread), `bandwidth` (the
roofline probes in C), `report` (table, JSON, progress bar), `plot`, `cli`.
"""


def main(argv=None) -> int:
    """The command line (see ``python -m dropout_fast bench --help``)."""
    from dropout_fast.bench.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
