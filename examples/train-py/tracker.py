"""Reporting metrics to an MLflow tracking server through its REST API (`/api/2.0/mlflow/`),
with basic auth whose password is a secret's *handle*: the script never holds the password;
the host puts it in on the way out, to the tracker's origin only (`kvrun run --use-secret`).
The Python twin of `examples/train/src/tracker.rs`."""

import os
import time
import urllib.parse

import kvrun


class TrackerError(Exception):
    """The tracker could not be reached or answered an error."""


class Tracker:
    """The tracker named by `MLFLOW_TRACKING_URI`, as the user `MLFLOW_TRACKING_USERNAME`, with
    the handle of the secret `MLFLOW_PASSWORD_SECRET` (default `mlflow-password`) as the
    password, into `MLFLOW_EXPERIMENT_NAME` (default `kvrun-example`)."""

    @classmethod
    def from_env(cls):
        """The tracker of the environment, or None when `MLFLOW_TRACKING_URI` is unset."""
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            return None
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if not user:
            raise TrackerError("MLFLOW_TRACKING_URI is set but MLFLOW_TRACKING_USERNAME is not")
        secret = os.environ.get("MLFLOW_PASSWORD_SECRET", "mlflow-password")
        if not hasattr(kvrun, "get_secret_handle"):
            raise TrackerError("reporting to MLflow with a secret's handle needs the kvrun sandbox (kvrun run train.py)")
        try:
            handle = kvrun.get_secret_handle(secret)
        except kvrun.SecretError as e:
            raise TrackerError(f"no handle for {secret!r}: {e}") from None
        return cls(uri.rstrip("/"), (user, handle), os.environ.get("MLFLOW_EXPERIMENT_NAME", "kvrun-example"))

    def __init__(self, uri, auth, experiment):
        self.uri = uri
        self._auth = auth
        self._experiment = experiment

    def log_run(self, metrics):
        """Creates a run in the experiment (made if missing), logs `metrics` (name to value) at
        step 0, ends the run, and returns its id."""
        experiment_id = self._experiment_id()
        now = int(time.time() * 1000)
        created = self._call("POST", "runs/create",
                             {"experiment_id": experiment_id, "start_time": now, "run_name": "kvrun-example-train-py"})
        run_id = created.get("run", {}).get("info", {}).get("run_id")
        if not run_id:
            raise TrackerError("runs/create answered without a run id")
        for key, value in metrics.items():
            self._call("POST", "runs/log-metric",
                       {"run_id": run_id, "key": key, "value": value, "timestamp": now, "step": 0})
        self._call("POST", "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)})
        return run_id

    def _experiment_id(self):
        try:
            found = self._call("GET", "experiments/get-by-name", params={"experiment_name": self._experiment})
            return found["experiment"]["experiment_id"]
        except TrackerError as e:
            if "RESOURCE_DOES_NOT_EXIST" not in str(e):
                raise
        return self._call("POST", "experiments/create", {"name": self._experiment})["experiment_id"]

    def _call(self, method, path, body=None, params=None):
        """One REST call; an answer other than 200 is an error with MLflow's error code."""
        url = f"{self.uri}/api/2.0/mlflow/{path}"
        try:
            answer = kvrun.http.request(method, url, json=body, params=params, auth=self._auth, timeout=30)
        except kvrun.http.HTTPError as e:
            raise TrackerError(str(e)) from None
        try:
            parsed = answer.json()
        except ValueError:
            parsed = None
        if answer.status != 200:
            code = parsed.get("error_code") if isinstance(parsed, dict) else None
            raise TrackerError(f"{method} {path}: HTTP {answer.status} {code or 'no MLflow error code'}")
        if not answer.headers.get("content-type", "").startswith("application/json") or parsed is None:
            raise TrackerError(f"{method} {path}: the answer is not JSON; is {urllib.parse.urlsplit(self.uri).netloc} an MLflow tracking server?")
        return parsed
