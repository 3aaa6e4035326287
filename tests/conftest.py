import sys
from pathlib import Path

# The test helpers (worldkit) live beside the tests; they are not part of the package.
sys.path.insert(0, str(Path(__file__).parent))
