//! Reporting metrics to an MLflow tracking server through its REST API (`/api/2.0/mlflow/`),
//! authenticated with basic auth whose password is a secret's handle.

use crate::bindings::kvrun::secrets::run;
use crate::http;
use base64::Engine as _;
use serde_json::{json, Value};

/// Where the metrics go and as whom.
pub struct Tracker {
    uri: String,
    experiment: String,
    authorization: Vec<u8>,
}

impl Tracker {
    /// The tracker named by `MLFLOW_TRACKING_URI` (none when unset), as the user
    /// `MLFLOW_TRACKING_USERNAME`, with the handle of the secret `MLFLOW_PASSWORD_SECRET`
    /// (default `mlflow-password`) as the password, into `MLFLOW_EXPERIMENT_NAME` (default
    /// `kvrun-example`).
    pub fn from_env() -> Option<Result<Tracker, String>> {
        let uri = std::env::var("MLFLOW_TRACKING_URI").ok()?;
        Some(Tracker::new(uri.trim_end_matches('/').to_string()))
    }

    fn new(uri: String) -> Result<Tracker, String> {
        let user = std::env::var("MLFLOW_TRACKING_USERNAME")
            .map_err(|_| "MLFLOW_TRACKING_URI is set but MLFLOW_TRACKING_USERNAME is not")?;
        let secret =
            std::env::var("MLFLOW_PASSWORD_SECRET").unwrap_or_else(|_| "mlflow-password".into());
        let handle = run::get_secret_handle(&secret)
            .map_err(|e| format!("no handle for {secret:?}: {}", crate::describe(&e)))?;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{handle}"));
        Ok(Tracker {
            uri,
            experiment: std::env::var("MLFLOW_EXPERIMENT_NAME")
                .unwrap_or_else(|_| "kvrun-example".into()),
            authorization: format!("Basic {credentials}").into_bytes(),
        })
    }

    /// The tracking server's URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Creates a run in the experiment (made if missing), logs `metrics` at step 0, ends the
    /// run, and returns its id.
    pub fn log_run(&self, metrics: &[(&str, f64)]) -> Result<String, String> {
        let experiment_id = self.experiment_id()?;
        let now = now_ms();
        let created = self.call(
            "POST",
            "runs/create",
            json!({ "experiment_id": experiment_id, "start_time": now, "run_name": "kvrun-example-train" }),
        )?;
        let run_id = created["run"]["info"]["run_id"]
            .as_str()
            .ok_or("runs/create answered without a run id")?
            .to_string();
        for (key, value) in metrics {
            self.call(
                "POST",
                "runs/log-metric",
                json!({ "run_id": run_id, "key": key, "value": value, "timestamp": now, "step": 0 }),
            )?;
        }
        self.call(
            "POST",
            "runs/update",
            json!({ "run_id": run_id, "status": "FINISHED", "end_time": now_ms() }),
        )?;
        Ok(run_id)
    }

    fn experiment_id(&self) -> Result<String, String> {
        let name: String = self
            .experiment
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let path = format!("experiments/get-by-name?experiment_name={name}");
        let found = match self.call("GET", &path, Value::Null) {
            Ok(found) => found["experiment"]["experiment_id"]
                .as_str()
                .map(str::to_string),
            Err(e) if e.contains("RESOURCE_DOES_NOT_EXIST") => None,
            Err(e) => return Err(e),
        };
        match found {
            Some(id) => Ok(id),
            None => self.call(
                "POST",
                "experiments/create",
                json!({ "name": self.experiment }),
            )?["experiment_id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| "experiments/create answered without an id".into()),
        }
    }

    /// One REST call; an answer other than 200 is an error with MLflow's error code.
    fn call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.uri);
        let body = match body {
            Value::Null => Vec::new(),
            body => body.to_string().into_bytes(),
        };
        let mut headers: Vec<(&str, &[u8])> = vec![("authorization", &self.authorization)];
        if !body.is_empty() {
            headers.push(("content-type", b"application/json"));
        }
        let answer = http::send(method, &url, &headers, &body)?;
        let json: Option<Value> = serde_json::from_slice(&answer.body).ok();
        if answer.status != 200 {
            let code = json
                .as_ref()
                .and_then(|j| j["error_code"].as_str())
                .unwrap_or("no MLflow error code");
            return Err(format!("{method} {path}: HTTP {} {code}", answer.status));
        }
        let is_json = answer
            .header("content-type")
            .is_some_and(|v| v.starts_with(b"application/json"));
        let json = json.filter(|_| is_json).ok_or_else(|| {
            format!(
                "{method} {path}: the answer is not JSON; is {} an MLflow tracking server?",
                self.uri
            )
        })?;
        Ok(json)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
