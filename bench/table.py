"""Print the side-by-side table (the same as ``python -m dropout_fast bench``).

    python bench/table.py [--quick] [--sizes 16,20,24] [--threads 1] [--json out.json] [--plot out.png]
"""
import sys

from dropout_fast.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
