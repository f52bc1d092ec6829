"""The example training job as an ordinary Python script: no WIT and no build step of your own.

In the sandbox (it runs in kvrun's Python runtime; nothing is built for it):

    kvrun run examples/train-py/train.py --secret db-password --dir examples/data::/data:ro

The same script runs outside any sandbox too, with the kvrun Python package installed
(`pip install ./bindings/python`), reading the same embedded vault:

    python3 examples/train-py/train.py examples/data/train.csv
"""

import sys

import kvrun
from fitting import fit, read_rows

DATA = sys.argv[1] if len(sys.argv) > 1 else "/data/train.csv"


password = kvrun.get_secret("db-password")
print(f"train.py: connecting to postgres://trainer:{password}@db.internal:5432/experiments")
rows = read_rows(DATA)
if len(rows) < 2:
    sys.exit(f"train.py: {DATA} needs a header and at least two x,y rows")
slope, intercept, mse = fit(rows)
print(f"train.py: fitted y = {slope:.4f} * x + {intercept:.4f} on {len(rows)} rows (mse {mse:.4f})")
