"""Command line: ``python -m dropout_fast {info,bench,demo,audit}``."""
import importlib
import json
import sys

# command -> (module, one-line help); each module has main(argv) -> exit code.
COMMANDS = {
    "info": (None, "version, backend, SIMD path, threads, OpenMP"),
    "bench": ("dropout_fast.bench", "side-by-side benchmark table (bench --help for options)"),
    "demo": ("dropout_fast.demo",
             "train on digits with torch's dropout vs dropout_fast (demo --help)"),
    "audit": ("dropout_fast.advise._cli",
              "dropout advice for a torch model: audit package.module:factory"),
}


def _usage() -> str:
    lines = [f"usage: python -m dropout_fast {{{','.join(COMMANDS)}}} [options]"]
    lines += [f"  {name:<6} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"python -m dropout_fast: unknown command {cmd!r} "
              f"(expected one of {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    if cmd == "info":
        import dropout_fast

        print(json.dumps(dropout_fast.info(), indent=2))
        return 0
    return importlib.import_module(COMMANDS[cmd][0]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
