"""`python -m bench` (make bench): measure, then write bench/results.json and docs/performance.md."""

import sys

from bench.run import write_results

sys.exit(write_results())
