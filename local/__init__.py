"""The local stack: the product's real pieces on one machine (see local/stack.py).

Importing it puts the shared layer on the path, where Lambda puts it (/opt/python), so the
stack, the demo, the bench and the reliability report import `zimage` as the functions do.
"""

import sys
from pathlib import Path

SHARED_CODE = Path(__file__).resolve().parent.parent / "layers" / "shared"
if str(SHARED_CODE) not in sys.path:
    sys.path.insert(0, str(SHARED_CODE))
