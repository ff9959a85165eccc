"""`python -m reliability` (make reliability): run the catalogue and write docs/reliability.md."""

import sys

from reliability.report import write_report

sys.exit(write_report())
