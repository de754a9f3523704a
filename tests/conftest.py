"""Make the test helpers in this directory (oracle.py) importable as top-level modules."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
