//! An example training job, built as a `wasm32-wasip2` command for the `training` world.
//!
//! It does what a real job does with a secret: reads the database password by name through
//! `kvrun:secrets/run` (the host checks the grant and masks the value in the output), builds
//! its connection string, and trains: an ordinary least-squares fit of `y` on `x` over the
//! CSV it finds at `/data/train.csv` (mount it with `--dir HOST_DIR::/data:ro`).
//!
//! ```text
//! kvrun run kvrun_example_train.wasm --secret db-password --dir examples/data::/data:ro
//! ```
//!
//! With `MLFLOW_TRACKING_URI` and `MLFLOW_TRACKING_USERNAME` in its environment, it also
//! reports the fitted metrics to that MLflow tracking server over `wasi:http`, with basic
//! auth whose password is the *handle* of the secret `mlflow-password` (or the one
//! `MLFLOW_PASSWORD_SECRET` names): the job never holds the password; the host puts it in
//! the request, and only for the origin the operator bound it to.
//!
//! ```text
//! kvrun run kvrun_example_train.wasm --secret db-password --dir examples/data::/data:ro \
//!   --use-secret mlflow-password=http://127.0.0.1:5000 \
//!   --env MLFLOW_TRACKING_URI=http://127.0.0.1:5000 --env MLFLOW_TRACKING_USERNAME=trainer
//! ```

mod bindings {
    // The component is a command (std's `main` exports `wasi:cli/run`), so only the
    // training world's own import is generated here, and `exit-with-code`: std's
    // `process::exit` goes through wasi-libc's `exit@0.2.0`, which carries only 0 or 1.
    wit_bindgen::generate!({
        inline: "package kvrun:app; world app {
            import kvrun:secrets/run@0.1.2;
            import wasi:cli/exit@0.2.12;
        }",
        generate_all,
        path: "../../wit",
    });
}

mod http;
mod tracker;

use bindings::kvrun::secrets::run;
use bindings::kvrun::secrets::types::Error;

/// Exit statuses of this job, as `kvrun run` passes them on.
const EXIT_NO_SECRET: u8 = 2;
const EXIT_BAD_DATA: u8 = 3;
const EXIT_TRACKER: u8 = 4;

/// Says what went wrong on stderr and ends the run with `status`.
fn fail(status: u8, message: &str) -> ! {
    eprintln!("train: {message}");
    bindings::wasi::cli::exit::exit_with_code(status);
    unreachable!("exit-with-code does not return")
}

fn main() {
    let secret_name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "db-password".to_string());
    let password = match run::get_secret(&secret_name) {
        Ok(value) => value,
        Err(e) => fail(
            EXIT_NO_SECRET,
            &format!("could not read secret {secret_name:?}: {}", describe(&e)),
        ),
    };
    println!("train: connecting to postgres://trainer:{password}@db.internal:5432/experiments");

    let path = "/data/train.csv";
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => fail(
            EXIT_BAD_DATA,
            &format!("cannot read {path} ({e}); mount data with --dir HOST_DIR::/data:ro"),
        ),
    };
    let points: Vec<(f64, f64)> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (x, y) = line.split_once(',')?;
            Some((x.trim().parse().ok()?, y.trim().parse().ok()?))
        })
        .collect();
    if points.len() < 2 {
        fail(
            EXIT_BAD_DATA,
            &format!("{path} needs a header and at least two x,y rows"),
        );
    }
    let n = points.len() as f64;
    let (mean_x, mean_y) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let mse = points
        .iter()
        .map(|(x, y)| (y - (slope * x + intercept)).powi(2))
        .sum::<f64>()
        / n;
    println!(
        "train: fitted y = {slope:.4} * x + {intercept:.4} on {} rows (mse {mse:.4})",
        points.len()
    );
    if let Some(tracker) = tracker::Tracker::from_env() {
        let tracker = tracker.unwrap_or_else(|e| fail(EXIT_TRACKER, &e));
        let metrics = [("slope", slope), ("intercept", intercept), ("mse", mse)];
        match tracker.log_run(&metrics) {
            Ok(run_id) => println!(
                "train: logged {} metrics to MLflow run {run_id} at {}",
                metrics.len(),
                tracker.uri()
            ),
            Err(e) => fail(EXIT_TRACKER, &format!("could not report to MLflow: {e}")),
        }
    }
}

/// What an error from `kvrun:secrets/run` says.
fn describe(e: &Error) -> String {
    match e {
        Error::NotFound(m)
        | Error::Denied(m)
        | Error::Conflict(m)
        | Error::Unauthenticated(m)
        | Error::InvalidName(m)
        | Error::InvalidArgument(m)
        | Error::Unavailable(m)
        | Error::Transport(m) => m.clone(),
        Error::Service(s) => format!("HTTP {} {}: {}", s.status, s.code, s.message),
    }
}
