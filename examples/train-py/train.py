"""The example training job as an ordinary Python script: no WIT and no build step of your own.

In the sandbox (it runs in kvrun's Python runtime; nothing is built for it):

    kvrun run examples/train-py/train.py --secret db-password --dir examples/data::/data:ro

With `MLFLOW_TRACKING_URI` and `MLFLOW_TRACKING_USERNAME` in its environment it also logs
slope, intercept and mse to that MLflow tracking server through its REST API, with basic auth
whose password is the *handle* of the secret `mlflow-password` (`tracker.py`): the script
never holds the password, the host puts it in on the way out, to the tracker only:

    kvrun run examples/train-py/train.py --secret db-password --dir examples/data::/data:ro \
      --use-secret mlflow-password=http://127.0.0.1:5000 \
      --env MLFLOW_TRACKING_URI=http://127.0.0.1:5000 --env MLFLOW_TRACKING_USERNAME=trainer

The same script runs outside any sandbox too, with the kvrun Python package installed
(`pip install ./bindings/python`), reading the same embedded vault (MLflow reporting with a
handle needs the sandbox):

    python3 examples/train-py/train.py examples/data/train.csv
"""

import sys

import kvrun
from fitting import fit, read_rows
from tracker import Tracker, TrackerError

DATA = sys.argv[1] if len(sys.argv) > 1 else "/data/train.csv"
EXIT_TRACKER = 4  # as the Rust example's


password = kvrun.get_secret("db-password")
print(f"train.py: connecting to postgres://trainer:{password}@db.internal:5432/experiments")
rows = read_rows(DATA)
if len(rows) < 2:
    sys.exit(f"train.py: {DATA} needs a header and at least two x,y rows")
slope, intercept, mse = fit(rows)
print(f"train.py: fitted y = {slope:.4f} * x + {intercept:.4f} on {len(rows)} rows (mse {mse:.4f})")
try:
    tracker = Tracker.from_env()
    if tracker is not None:
        run_id = tracker.log_run({"slope": slope, "intercept": intercept, "mse": mse})
        print(f"train.py: logged 3 metrics to MLflow run {run_id} at {tracker.uri}")
except TrackerError as e:
    print(f"train.py: {e}", file=sys.stderr)
    sys.exit(EXIT_TRACKER)
