"""`python -m bench` (make bench): measure, then write bench/results.json and docs/performance.md."""

import json
import sys

from bench.report import REPORT, render
from bench.run import RESULTS, measure

results = measure()
RESULTS.write_text(json.dumps(results, indent=2) + "\n")
REPORT.write_text(render(results))
print(json.dumps(results, indent=2))
sys.exit(0)
