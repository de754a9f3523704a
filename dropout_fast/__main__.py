"""Command line: ``python -m dropout_fast info`` and ``python -m dropout_fast bench``."""
import json
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m dropout_fast {info,bench,audit} [options]\n"
              "  info   version, backend, SIMD path, threads, OpenMP\n"
              "  bench  side-by-side benchmark table (bench --help for options)\n"
              "  audit  dropout advice for a torch model: audit package.module:factory")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "info":
        import dropout_fast

        print(json.dumps(dropout_fast.info(), indent=2))
        return 0
    if cmd == "bench":
        from dropout_fast import bench

        return bench.main(rest)
    if cmd == "audit":
        from dropout_fast.advise import _cli

        return _cli.main(rest)
    print(f"python -m dropout_fast: unknown command {cmd!r} (expected info or bench)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
