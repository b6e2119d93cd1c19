"""``python -m alignlib.notebooks run [--profile default|full] [--only PATTERN] [--out DIR]``."""
import sys

from alignlib.notebooks import main

sys.exit(main())
