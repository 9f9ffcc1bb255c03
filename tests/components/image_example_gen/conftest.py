"""This folder's test modules on sys.path: some tests reuse another's helpers."""
import sys
from pathlib import Path

# With --import-mode=importlib a test's folder is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).parent))
