//! Invariant 12: a secret bound with `--use-secret` is substituted by the host into requests
//! to its bound origins only; the run never receives the value, also not from a response
//! that echoes it. The hostile training fixture tries every way to get the value out; a
//! second server records whatever reaches it.

use crate::common;

use base64::Engine as _;
use common::{http_reply, run_in, Ran, RawServer, Step, TestVault, HOSTILE_TRAINING_WASM};
use kvrun::sandbox::{RunExit, RunOptions, Sandbox, TrainingComponent};
use kvrun::SecretString;
use std::sync::Arc;
use std::time::Duration;

const VALUE: &str = "tok-Secret/Value+42";

/// A server that answers with what it received: the request line, headers and body as JSON,
/// and the `Authorization` it got in an `X-Echo` header; `/redirect` sends the client to
/// `redirect_to`.
async fn echo_server(redirect_to: Option<String>) -> RawServer {
    RawServer::scripted(move |_, seen| {
        if let Some(target) = redirect_to
            .as_ref()
            .filter(|_| seen.request_line().contains("/redirect"))
        {
            let location = format!("Location: {target}/steal");
            return vec![Step::Write(http_reply("302 Found", &[&location], "{}"))];
        }
        let echo = serde_json::json!({
            "line": seen.request_line(),
            "head": seen.head,
            "body": String::from_utf8_lossy(&seen.body),
        });
        let auth = format!(
            "X-Echo: {}",
            seen.header("authorization").unwrap_or_default()
        );
        let request_id = format!(
            "X-Request-Id: {}",
            seen.header("x-request-id").unwrap_or_default()
        );
        vec![Step::Write(http_reply(
            "200 OK",
            &[&auth, &request_id],
            &echo.to_string(),
        ))]
    })
    .await
}

/// A server that echoes the `Authorization` it got the way other services would: `/gzip`
/// gzip-compressed whatever the request accepts, `/go` in a JSON body escaped as Go's
/// `encoding/json` does (`\u0026 \u003c \u003e`), `/html` in a page escaped as Jinja2 does
/// (`&amp; &lt; &gt; &#34; &#39;`), `/utf16` as UTF-16.
async fn encoding_server() -> RawServer {
    RawServer::scripted(|_, seen| {
        let auth = seen.header("authorization").unwrap_or_default();
        let line = seen.request_line();
        let (headers, body): (Vec<String>, Vec<u8>) = if line.contains("/coding") {
            // The value echoed as the content coding: the refusal must not carry it.
            let token = auth.trim_start_matches("Bearer ").replace(' ', "-");
            (vec![format!("Content-Encoding: x-{token}")], b"{}".to_vec())
        } else if line.contains("/mime") {
            // The value sent in a JSON body, echoed as `base64.encodebytes` writes it.
            use base64::Engine as _;
            let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap_or_default();
            let value = sent["password"].as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            let lines: Vec<&str> = encoded
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            (vec![], (lines.join("\n") + "\n").into_bytes())
        } else if line.contains("/te-gzip") {
            // Compressed as a transfer coding under chunked: hyper undoes the chunks only.
            use std::io::Write as _;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(format!("{{\"auth\":{auth:?}}}").as_bytes())
                .unwrap();
            let gz = gz.finish().unwrap();
            let mut chunked = format!("{:x}\r\n", gz.len()).into_bytes();
            chunked.extend_from_slice(&gz);
            chunked.extend_from_slice(b"\r\n0\r\n\r\n");
            let mut reply =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
                    .to_vec();
            reply.extend_from_slice(&chunked);
            return vec![Step::Write(reply)];
        } else if line.contains("/gzip") {
            use std::io::Write as _;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(format!("{{\"auth\":{auth:?}}}").as_bytes())
                .unwrap();
            (vec!["Content-Encoding: gzip".into()], gz.finish().unwrap())
        } else if line.contains("/go") {
            let escaped = serde_json::to_string(&auth)
                .unwrap()
                .replace('&', "\\u0026")
                .replace('<', "\\u003c")
                .replace('>', "\\u003e");
            (vec![], format!("{{\"auth\":{escaped}}}").into_bytes())
        } else if line.contains("/html") {
            let escaped = auth
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\'', "&#39;");
            (vec![], format!("<p>You sent {escaped}</p>").into_bytes())
        } else {
            let text = format!("auth={auth}");
            (
                vec![],
                text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            )
        };
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for h in headers {
            reply.push_str(&h);
            reply.push_str("\r\n");
        }
        reply.push_str("\r\n");
        let mut reply = reply.into_bytes();
        reply.extend_from_slice(&body);
        vec![Step::Write(reply)]
    })
    .await
}

struct Setup {
    _vault: TestVault,
    bound: RawServer,
    other: RawServer,
    sandbox: Sandbox,
    component: TrainingComponent,
}

async fn setup() -> Setup {
    setup_with(VALUE, false).await
}

/// A vault whose `api-token` is `value`, a second echo server (`other`) and a bound server:
/// the echo server, which redirects `/redirect` to `other`, or with `encodings` the server
/// that echoes in other encodings ([`encoding_server`]).
async fn setup_with(value: &str, encodings: bool) -> Setup {
    let vault =
        TestVault::with_secrets(&[("api-token", value), ("db-password", "db-value-1")]).await;
    let other = echo_server(None).await;
    let bound = if encodings {
        encoding_server().await
    } else {
        echo_server(Some(other.url())).await
    };
    let mut trusted = bound.ca_pem.clone();
    trusted.extend_from_slice(&other.ca_pem);
    let sandbox = Sandbox::new(common::runtime(), vault.options())
        .unwrap()
        .with_outbound_ca(trusted)
        .unwrap();
    let component = sandbox.prepare(HOSTILE_TRAINING_WASM).unwrap();
    Setup {
        _vault: vault,
        bound,
        other,
        sandbox,
        component,
    }
}

impl Setup {
    async fn run(&self, args: &[String], use_secrets: &[String], allow_http: &[String]) -> Ran {
        let options = RunOptions {
            args: args.to_vec(),
            use_secrets: use_secrets.to_vec(),
            allow_http: allow_http.to_vec(),
            timeout: Duration::from_secs(30),
            ..RunOptions::default()
        };
        self.run_with(options).await
    }

    async fn run_with(&self, options: RunOptions) -> Ran {
        run_in(&self.sandbox, &self.component, options).await
    }

    /// `use api-token URL PLACE [follow]` with `api-token` bound as `binding`.
    async fn use_token(&self, url: &str, place: &str, binding: &str, allow: &[String]) -> Ran {
        let mut args: Vec<String> = ["use", "api-token", url].map(String::from).to_vec();
        args.extend(place.split(' ').map(String::from));
        self.run(&args, &[binding.to_string()], allow).await
    }
}

/// Whether the server received the value where it belongs.
type Received = Box<dyn Fn(&common::Seen) -> bool>;

fn reversed(text: &str) -> String {
    text.chars().rev().collect()
}

fn use_records(ran: &Ran) -> Vec<&serde_json::Value> {
    ran.audit
        .iter()
        .filter(|r| r["operation"] == "use-secret")
        .collect()
}

#[tokio::test]
async fn bound_handles_carry_the_value_and_echoes_come_back_masked() {
    let s = setup().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("trainer:{VALUE}"));
    let percent: String = form_urlencoded::byte_serialize(VALUE.as_bytes()).collect();
    let cases: [(&str, &str, Received); 6] = [
        (
            "bearer",
            "",
            Box::new(|r| {
                r.header("authorization").as_deref() == Some(&format!("Bearer {VALUE}")[..])
            }),
        ),
        (
            "basic",
            "",
            Box::new(move |r| r.header("authorization") == Some(format!("Basic {basic}"))),
        ),
        (
            "header",
            "",
            Box::new(|r| r.header("x-api-key").as_deref() == Some(VALUE)),
        ),
        (
            "upper",
            "",
            Box::new(|r| r.header("x-api-key").as_deref() == Some(VALUE)),
        ),
        (
            "query",
            ",query",
            Box::new(move |r| r.request_line().contains(&format!("key={percent}"))),
        ),
        (
            "body",
            ",body",
            Box::new(|r| {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                body["password"] == VALUE
            }),
        ),
    ];
    for (n, (place, options, received)) in cases.iter().enumerate() {
        let binding = format!("api-token={}/v1{options}", s.bound.url());
        let ran = s
            .use_token(&format!("{}/v1/echo", s.bound.url()), place, &binding, &[])
            .await;
        assert_eq!(ran.exit, RunExit::Code(0), "{place}: {}", ran.output());
        assert!(
            ran.stdout.contains("use: status 200"),
            "{place}: {}",
            ran.stdout
        );
        let requests = s.bound.requests();
        assert_eq!(
            requests.len(),
            n + 1,
            "{place}: one request reached the bound server"
        );
        let seen = requests.last().unwrap();
        assert!(
            received(seen),
            "{place}: the server got the value: {}",
            seen.head
        );
        let output = ran.output();
        assert!(!output.contains(VALUE), "{place}: {output}");
        assert!(
            !output.contains(&reversed(VALUE)) && !output.contains(&reversed(&seen.head)),
            "{place}: the echoed answer reached the run unmasked: {output}"
        );
        assert!(output.contains("***"), "{place}: {output}");
        let records = use_records(&ran);
        assert_eq!(records.len(), 2, "{place}: {records:?}");
        assert_eq!(records[0]["outcome"], "substituted");
        assert_eq!(
            records[1]["outcome"], "echo-masked",
            "{place}: the echo is audited"
        );
        assert_eq!(records[1]["name"], "api-token");
        assert_eq!(records[1]["origin"], records[0]["origin"]);
        assert_eq!(records[0]["name"], "api-token");
        assert_eq!(records[0]["path_prefix"], "/v1");
        assert_eq!(
            records[0]["method"],
            if *place == "body" { "POST" } else { "GET" }
        );
        assert_eq!(
            records[0]["origin"],
            format!("https://127.0.0.1:{}", s.bound.addr.port())
        );
        let audit = serde_json::to_string(&ran.audit).unwrap();
        assert!(!audit.contains(VALUE), "{audit}");
    }
    assert!(s.other.requests().is_empty());
}

#[tokio::test]
async fn every_other_way_out_is_refused_audited_and_sends_nothing() {
    let s = setup().await;
    let plain = RawServer::plain(|_, _| vec![Step::Write(http_reply("200 OK", &[], "{}"))]).await;
    let plain_origin = format!("http://127.0.0.1:{}", plain.addr.port());
    let bound_v1 = format!("api-token={}/v1", s.bound.url());
    let bound_all = format!("api-token={},query,body", s.bound.url());
    let allow_other = [s.other.url(), plain_origin.clone()];
    let attempts: Vec<(&str, String, &str, &str)> = vec![
        (
            "an unbound origin",
            format!("{}/v1", s.other.url()),
            "bearer",
            &bound_v1,
        ),
        (
            "another path",
            format!("{}/v2", s.bound.url()),
            "bearer",
            &bound_v1,
        ),
        (
            "a path that climbs out",
            format!("{}/v1/../admin", s.bound.url()),
            "header",
            &bound_v1,
        ),
        (
            "plain http",
            format!("{plain_origin}/v1"),
            "header",
            &bound_v1,
        ),
        (
            "the query without ,query",
            format!("{}/v1", s.bound.url()),
            "query",
            &bound_v1,
        ),
        (
            "the body without ,body",
            format!("{}/v1", s.bound.url()),
            "body",
            &bound_v1,
        ),
        (
            "split across two headers",
            format!("{}/v1", s.bound.url()),
            "split",
            &bound_all,
        ),
        (
            "percent-encoded",
            format!("{}/v1", s.bound.url()),
            "percent",
            &bound_all,
        ),
        (
            "base64-encoded",
            format!("{}/v1", s.bound.url()),
            "base64",
            &bound_all,
        ),
        (
            "an Authorization of its own",
            format!("{}/v1", s.bound.url()),
            "header-plain-auth",
            &bound_all,
        ),
    ];
    for (what, url, place, binding) in &attempts {
        let before = (
            s.bound.requests().len(),
            s.other.requests().len(),
            plain.requests().len(),
        );
        let ran = s.use_token(url, place, binding, &allow_other).await;
        assert_eq!(ran.exit, RunExit::Code(0), "{what}: {}", ran.output());
        assert!(
            ran.stdout
                .contains("the kvrun host refused the request (this run may not send it there)"),
            "{what}: {}",
            ran.stdout
        );
        assert!(
            ran.stdout.contains("use: the host refused: ") && !ran.stdout.contains(VALUE),
            "{what}: the run is told why (egress.last-refusal), never the value: {}",
            ran.stdout
        );
        let after = (
            s.bound.requests().len(),
            s.other.requests().len(),
            plain.requests().len(),
        );
        assert_eq!(before, after, "{what}: nothing was sent");
        let records = use_records(&ran);
        assert_eq!(records.len(), 1, "{what}: {records:?}");
        let outcome = records[0]["outcome"].as_str().unwrap();
        assert!(outcome.starts_with("refused: "), "{what}: {outcome}");
        assert!(!ran.output().contains(VALUE) && !outcome.contains(VALUE));
    }

    let ran = s
        .use_token(
            &format!("{}/v1/redirect", s.bound.url()),
            "bearer follow",
            &bound_v1,
            &allow_other,
        )
        .await;
    assert!(ran.stdout.contains("use: following to"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("the kvrun host refused the request (this run may not send it there)"),
        "{}",
        ran.stdout
    );
    let outcomes: Vec<&str> = use_records(&ran)
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(outcomes[0], "substituted");
    assert!(outcomes[1].starts_with("refused: "), "{outcomes:?}");
    assert!(
        s.other.requests().is_empty(),
        "a redirect did not carry the handle elsewhere"
    );

    let ran = s
        .run(
            &["ask".into(), "api-token".into()],
            std::slice::from_ref(&bound_v1),
            &[],
        )
        .await;
    assert!(ran.stdout.contains("for use only"), "{}", ran.stdout);
    assert_eq!(ran.audit[0]["outcome"], "denied: use only (--use-secret)");

    let ran = s
        .run(
            &["handle".into(), "db-password".into()],
            std::slice::from_ref(&bound_v1),
            &[],
        )
        .await;
    assert!(
        ran.stdout.contains("not bound to any origin"),
        "{}",
        ran.stdout
    );
    assert!(s.other.requests().is_empty());
}

#[tokio::test]
async fn one_runs_handle_does_not_work_in_another_running_at_the_same_time() {
    let s = setup().await;
    let binding = format!("api-token={}", s.bound.url());
    let holder = common::Capture::default();
    let holder_io = kvrun::sandbox::RunIo {
        stdout: Box::new(holder.clone()),
        stderr: Box::new(std::io::sink()),
        audit: std::sync::Arc::new(kvrun::audit::AuditLog::to_writer(
            Box::new(std::io::sink()),
            "a",
            common::audit_key(),
        )),
        output_files: Default::default(),
    };
    let holding = s.sandbox.run(
        &s.component,
        RunOptions {
            args: ["handle", "api-token", "3000"].map(String::from).to_vec(),
            use_secrets: vec![binding.clone()],
            timeout: Duration::from_secs(30),
            ..RunOptions::default()
        },
        holder_io,
    );
    let other_run = async {
        let handle = loop {
            let text = holder.text();
            if let Some(h) = text
                .lines()
                .find_map(|l| l.strip_prefix("handle: ").map(String::from))
                .filter(|_| text.contains("holding"))
            {
                break h;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(handle.starts_with("kvrun-handle-"), "{handle}");
        let ran = s
            .run(
                &[
                    "use-handle".into(),
                    handle.clone(),
                    format!("{}/v1", s.bound.url()),
                ],
                std::slice::from_ref(&binding),
                &[],
            )
            .await;
        let own = s
            .run(
                &["handle".into(), "api-token".into()],
                std::slice::from_ref(&binding),
                &[],
            )
            .await;
        (handle, ran, own)
    };
    let (held, (handle, ran, own)) = tokio::join!(holding, other_run);
    assert_eq!(held.unwrap(), RunExit::Code(0));
    assert!(
        ran.stdout
            .contains("the kvrun host refused the request (this run may not send it there)"),
        "{}",
        ran.stdout
    );
    let records = use_records(&ran);
    assert!(
        records[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("not one of this run's"),
        "{records:?}"
    );
    assert!(records[0]["name"].is_null());
    assert!(s.bound.requests().is_empty(), "nothing was sent");
    let own = own
        .stdout
        .trim()
        .strip_prefix("handle: ")
        .unwrap()
        .to_string();
    assert_ne!(own, handle, "every run gets its own handle");
}

#[tokio::test]
async fn bad_bindings_are_refused_before_the_run_starts() {
    let s = setup().await;
    for (binding, says) in [
        ("api-token", "no '='"),
        ("api-token=http://tracker.example.com", "plain http"),
        (
            "api-token=https://a.example.com,everywhere",
            "unknown option",
        ),
        ("bad name=https://a.example.com", "secret names"),
    ] {
        let options = RunOptions {
            use_secrets: vec![binding.to_string()],
            ..RunOptions::default()
        };
        let err = s
            .sandbox
            .run(&s.component, options, common::discarded_io())
            .await
            .expect_err(binding);
        assert!(err.to_string().contains(says), "{binding}: {err}");
    }
}

#[tokio::test]
async fn a_body_over_the_scanned_size_is_refused_with_nothing_sent() {
    let s = setup().await;
    let binding = format!("api-token={},body", s.bound.url());
    let ran = s
        .use_token(&format!("{}/v1", s.bound.url()), "big-body", &binding, &[])
        .await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.output());
    assert!(ran.stdout.starts_with("use: "), "{}", ran.stdout);
    assert!(!ran.stdout.contains("use: status"), "{}", ran.stdout);
    assert!(s.bound.requests().is_empty(), "nothing was sent");
    let records = use_records(&ran);
    assert_eq!(records.len(), 1, "{records:?}");
    let outcome = records[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("refused: ") && outcome.contains("8 MiB"),
        "{outcome}"
    );
}

#[tokio::test]
async fn requests_that_spend_the_audit_budget_stop_the_run() {
    let s = setup().await;
    let binding = format!("api-token={}/v1", s.bound.url());
    const BUDGET: u64 = 4096;
    const SENT: usize = 2000;
    for place in ["bearer", "split"] {
        let before = s.bound.requests().len();
        let options = RunOptions {
            args: ["use", "api-token", &format!("{}/v1", s.bound.url()), place]
                .map(String::from)
                .into_iter()
                .chain([SENT.to_string()])
                .collect(),
            use_secrets: vec![binding.clone()],
            max_audit: BUDGET,
            // The echo server echoes every request; this test is about the audit budget.
            max_echoes: u32::MAX,
            timeout: Duration::from_secs(60),
            ..RunOptions::default()
        };
        let ran = s.run_with(options).await;
        assert_eq!(
            ran.exit,
            RunExit::AuditLimit(BUDGET),
            "{place}: {}",
            ran.output()
        );
        let substituted = use_records(&ran)
            .iter()
            .filter(|r| r["outcome"] == "substituted")
            .count();
        let received = s.bound.requests().len() - before;
        assert!(
            received <= substituted,
            "{place}: every request sent is audited first ({received} sent, {substituted} audited)"
        );
        assert!(received < SENT, "{place}: the run was stopped early");
        let last: serde_json::Value =
            serde_json::from_str(ran.audit_lines.last().unwrap()).unwrap();
        assert_eq!(last["operation"], "run-end", "{place}");
        let outcome = last["outcome"].as_str().unwrap();
        assert!(
            outcome.contains("4096 bytes of audit records"),
            "{place}: {outcome}"
        );
    }
}

/// The reproduction of the echo oracle: the run sends its handle in `Authorization` (normal
/// use) and a guess in `X-Request-Id`, which the service echoes. A guess that begins a form of
/// the value (here its hex) must come back exactly like one that does not.
#[tokio::test]
async fn an_echoed_guess_is_no_oracle_and_every_echo_is_audited() {
    let s = setup().await;
    let binding = format!("api-token={}/v1", s.bound.url());
    let url = format!("{}/v1/echo", s.bound.url());
    let hex = hex::encode(VALUE);
    let right = &hex[..12];
    let wrong = "746f6b2d5366";
    let mut shown = Vec::new();
    for guess in [right, wrong, &VALUE[..5], "tok-X"] {
        let ran = s
            .use_token(&url, &format!("guess={guess}"), &binding, &[])
            .await;
        assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.output());
        let echoed = reversed(&format!("x-request-id: {guess}"));
        assert_eq!(
            ran.stdout.matches(&echoed).count(),
            2,
            "{guess}: the guess came back as sent, in the echoed header and body: {}",
            ran.stdout
        );
        let records = use_records(&ran);
        assert_eq!(
            records
                .iter()
                .filter(|r| r["outcome"] == "echo-masked")
                .count(),
            1,
            "{guess}: {records:?}"
        );
        shown.push(ran.stdout.replace(&echoed, "GUESS").len());
    }
    assert_eq!(
        shown[0], shown[1],
        "a right and a wrong hex guess look alike"
    );
    assert!(s.other.requests().is_empty());
}

#[tokio::test]
async fn a_run_whose_answers_keep_carrying_the_value_back_is_stopped() {
    let s = setup().await;
    let binding = format!("api-token={}/v1", s.bound.url());
    let url = format!("{}/v1/echo", s.bound.url());
    let args: Vec<String> = ["use", "api-token", &url, "bearer", "12"]
        .map(String::from)
        .to_vec();
    let options = RunOptions {
        args,
        use_secrets: vec![binding],
        max_echoes: 3,
        ..RunOptions::default()
    };
    let ran = run_in(&s.sandbox, &s.component, options).await;
    assert_eq!(ran.exit, RunExit::EchoLimit(3), "{}", ran.output());
    assert_eq!(ran.exit.status(), 119);
    assert_eq!(
        s.bound.requests().len(),
        4,
        "no request after the fourth echo was sent"
    );
    let records = use_records(&ran);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["outcome"] == "echo-masked")
            .count(),
        4
    );
    assert!(!ran.output().contains(VALUE));
}

/// The reproduction of the review's encodings: a bound service echoes the value gzip-compressed
/// (the run asked for it with `Accept-Encoding`), in Go-escaped JSON, in an HTML page escaped
/// as Jinja2 does, and as UTF-16. The compressed answer is refused unread (the request asked
/// for identity); the others reach the run masked.
#[tokio::test]
async fn echoes_in_other_encodings_are_masked_or_refused() {
    let tricky = "S3cr3t&Pa<ss>+\"q'/~ x";
    let s = setup_with(tricky, true).await;
    let binding = format!("api-token={}/v1", s.bound.url());
    for path in ["go", "html", "utf16"] {
        let ran = s
            .use_token(
                &format!("{}/v1/{path}", s.bound.url()),
                "bearer",
                &binding,
                &[],
            )
            .await;
        assert_eq!(ran.exit, RunExit::Code(0), "{path}: {}", ran.output());
        let output = ran.output();
        assert!(output.contains("use: status 200"), "{path}: {output}");
        assert!(output.contains("***"), "{path}: {output}");
        for fragment in ["S3cr3t", "3tr3cS", "S\u{0}3\u{0}c", "q'/~ x", "x ~/'q"] {
            assert!(!output.contains(fragment), "{path}: {fragment} in {output}");
        }
    }
    let ran = s
        .use_token(
            &format!("{}/v1/gzip", s.bound.url()),
            "bearer-gzip",
            &binding,
            &[],
        )
        .await;
    let output = ran.output();
    assert!(!output.contains("use: status 200"), "gzip: {output}");
    assert!(
        output.contains("use: "),
        "gzip: the request failed: {output}"
    );
    let seen = s.bound.requests();
    assert_eq!(
        seen.last().unwrap().header("accept-encoding").as_deref(),
        Some("identity"),
        "a request carrying a value asks for an uncompressed answer"
    );
    let records = use_records(&ran);
    assert!(
        records.iter().any(|r| r["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("refused: the answer came compressed (gzip)"))),
        "{records:?}"
    );
    let ran = s
        .use_token(
            &format!("{}/v1/te-gzip", s.bound.url()),
            "bearer-gzip",
            &binding,
            &[],
        )
        .await;
    assert!(
        !ran.output().contains("use: status 200"),
        "transfer-coded gzip: {}",
        ran.output()
    );
    assert!(
        use_records(&ran).iter().any(|r| r["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("refused: the answer came compressed (gzip)"))),
        "{:?}",
        use_records(&ran)
    );
    let ran = s
        .use_token(
            &format!("{}/v1/coding", s.bound.url()),
            "bearer",
            &binding,
            &[],
        )
        .await;
    let everything = format!(
        "{}{}",
        ran.output(),
        serde_json::to_string(&ran.audit).unwrap()
    );
    assert!(
        everything.contains("refused: the answer came compressed (an unknown coding)"),
        "{everything}"
    );
    for fragment in ["s3cr3t&pa", "S3cr3t&Pa", "q'/~-x"] {
        assert!(
            !everything.contains(fragment),
            "the coding carried the value: {everything}"
        );
    }
}

/// The review's reproduction: a long value (a PEM key of over 1,024 characters) bound with
/// `,body` and echoed by the service as MIME base64 reached the run whole, since values that
/// long were masked in fixed forms only.
#[tokio::test]
async fn a_long_value_echoed_as_mime_base64_comes_back_masked() {
    use base64::Engine as _;
    let body: Vec<u8> = (0..1200u32).map(|i| (i * 7919 % 251) as u8).collect();
    let lines: Vec<String> = base64::engine::general_purpose::STANDARD
        .encode(&body)
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    assert!(pem.len() > 1024);
    let s = setup_with(&pem, true).await;
    let binding = format!("api-token={}/v1,body", s.bound.url());
    let ran = s
        .use_token(&format!("{}/v1/mime", s.bound.url()), "body", &binding, &[])
        .await;
    let output = ran.output();
    assert!(output.contains("use: status 200"), "{output}");
    let shown = reversed(&output);
    let echoed = base64::engine::general_purpose::STANDARD.encode(&pem);
    for piece in echoed.as_bytes().chunks(24) {
        let piece = std::str::from_utf8(piece).unwrap();
        assert!(!shown.contains(piece), "{piece} came back in {shown}");
    }
    assert!(
        use_records(&ran)
            .iter()
            .any(|r| r["outcome"] == "echo-masked"),
        "{:?}",
        use_records(&ran)
    );
}

/// The reproduction of the path prefixes: servers that resolve `..;` (Tomcat, Spring) or
/// decode twice (some proxies) would take these paths out of the bound `/v1`.
#[tokio::test]
async fn paths_that_servers_resolve_outside_the_prefix_are_refused() {
    let s = setup().await;
    let binding = format!("api-token={}/v1", s.bound.url());
    for path in ["/v1/..;/admin", "/v1/.;/admin", "/v1/%252e%252e/admin"] {
        let ran = s
            .use_token(&format!("{}{path}", s.bound.url()), "bearer", &binding, &[])
            .await;
        assert!(
            ran.stdout.contains("use: ") && !ran.stdout.contains("status 200"),
            "{path}: {}",
            ran.output()
        );
        let records = use_records(&ran);
        assert_eq!(records.len(), 1, "{path}: {records:?}");
        assert!(records[0]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("refused"));
    }
    assert!(s.bound.requests().is_empty(), "nothing reached the server");
}

/// `use-every api-token URL 100 N` with `api-token` bound, a handle lifetime of `lifetime`,
/// while `meanwhile` changes the vault once the bound server has received `after` requests.
async fn use_every_while(
    s: &Setup,
    times: usize,
    lifetime: Duration,
    after: usize,
    meanwhile: impl std::future::Future<Output = ()>,
) -> Ran {
    let before = s.bound.requests().len();
    let options = RunOptions {
        args: [
            "use-every",
            "api-token",
            &format!("{}/v1", s.bound.url()),
            "100",
        ]
        .map(String::from)
        .into_iter()
        .chain([times.to_string()])
        .collect(),
        use_secrets: vec![format!("api-token={}", s.bound.url())],
        max_echoes: u32::MAX,
        handle_lifetime: lifetime,
        timeout: Duration::from_secs(60),
        ..RunOptions::default()
    };
    let (ran, ()) = tokio::join!(s.run_with(options), async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while s.bound.requests().len() < before + after {
            assert!(
                std::time::Instant::now() < deadline,
                "the run never sent {after} requests"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        meanwhile.await
    });
    ran
}

/// The Bearer values the bound server received since `before`, in order.
fn bearers(s: &Setup, before: usize) -> Vec<String> {
    s.bound.requests()[before..]
        .iter()
        .filter_map(|r| r.header("authorization"))
        .map(|a| a.trim_start_matches("Bearer ").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_set_again_mid_run_reaches_the_handles_requests_within_its_lifetime() {
    const NEW: &str = "api-token-rotated-7f3Qx9Lm2Vb8";
    let s = setup().await;
    let before = s.bound.requests().len();
    let mut client = s._vault.client().await;
    let ran = use_every_while(&s, 30, Duration::from_millis(500), 10, async {
        client
            .set_secret(
                "api-token",
                &SecretString::from(NEW),
                &kvrun::SetOptions {
                    content_type: None,
                    tags: Vec::new(),
                },
            )
            .await
            .unwrap();
    })
    .await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.output());
    assert!(!ran.stdout.contains("refused"), "{}", ran.stdout);
    let sent = bearers(&s, before);
    assert_eq!(sent.len(), 30, "{sent:?}");
    let switched = sent
        .iter()
        .position(|v| v == NEW)
        .expect("the new value was sent");
    assert!(
        switched >= 10,
        "the first 10 requests carried the old value: {switched}"
    );
    assert!(sent[..switched].iter().all(|v| v == VALUE), "{sent:?}");
    assert!(
        sent[switched..].iter().all(|v| v == NEW),
        "once switched, never back: {sent:?}"
    );
    assert!(
        switched <= 10 + 5 + 3,
        "within the lifetime (500 ms, 5 requests 100 ms apart) of the set: request {switched}"
    );
    // The records name the version each request used, and every re-read.
    let versions: Vec<&str> = use_records(&ran)
        .iter()
        .filter(|r| r["outcome"] == "substituted")
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 30);
    assert_ne!(versions[0], versions[29]);
    assert!(versions[..switched].iter().all(|v| *v == versions[0]));
    let rereads: Vec<&serde_json::Value> = ran
        .audit
        .iter()
        .filter(|r| r["operation"] == "reread-secret")
        .collect();
    assert!(
        rereads.len() >= 4,
        "one re-read per lifetime: {}",
        rereads.len()
    );
    assert!(rereads.iter().all(|r| r["outcome"] == "ok"));
    assert!(rereads.iter().any(|r| r["version"] == versions[29]));
    assert!(!ran.output().contains(NEW) && !ran.output().contains(VALUE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_deleted_mid_run_stops_its_handles_substitutions() {
    let s = setup().await;
    let before = s.bound.requests().len();
    let mut client = s._vault.client().await;
    let ran = use_every_while(&s, 20, Duration::from_millis(300), 5, async {
        client.delete_secret("api-token").await.unwrap();
    })
    .await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.output());
    let sent = bearers(&s, before);
    assert!(
        !sent.is_empty() && sent.len() < 20,
        "some sent, then stopped: {}",
        sent.len()
    );
    assert!(sent.iter().all(|v| v == VALUE));
    let last = ran.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("use 20: refused: ")
            && last.contains("the secret was deleted from the vault since the run read it"),
        "{}",
        ran.stdout
    );
    assert!(ran
        .audit
        .iter()
        .any(|r| r["operation"] == "reread-secret"
            && r["outcome"] == "not-found: substitutions stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_failure_to_read_again_keeps_the_last_value_and_says_so() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = reads.clone();
    let vault = RawServer::start(move |_, request| {
        let host = request.header("host").unwrap();
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            http_reply(
                "200 OK",
                &[],
                &common::bundle_json(&host, "api-token", VALUE),
            )
        } else {
            http_reply(
                "503 Service Unavailable",
                &[],
                "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"try later\"}}",
            )
        }
    })
    .await;
    let bound = echo_server(None).await;
    let mut options = vault.options("t");
    options.retry.max_attempts = 1;
    let sandbox = Sandbox::new(common::runtime(), options)
        .unwrap()
        .with_outbound_ca(bound.ca_pem.clone())
        .unwrap();
    let component = sandbox.prepare(HOSTILE_TRAINING_WASM).unwrap();
    let ran = run_in(
        &sandbox,
        &component,
        RunOptions {
            args: [
                "use-every",
                "api-token",
                &format!("{}/v1", bound.url()),
                "100",
                "8",
            ]
            .map(String::from)
            .to_vec(),
            use_secrets: vec![format!("api-token={}", bound.url())],
            max_echoes: u32::MAX,
            handle_lifetime: Duration::from_millis(200),
            timeout: Duration::from_secs(60),
            ..RunOptions::default()
        },
    )
    .await;
    assert_eq!(ran.exit, RunExit::Code(0), "{}", ran.output());
    assert!(!ran.stdout.contains("refused"), "{}", ran.stdout);
    let sent: Vec<String> = bound
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization"))
        .collect();
    assert_eq!(sent.len(), 8);
    assert!(sent.iter().all(|v| *v == format!("Bearer {VALUE}")));
    let kept: Vec<&serde_json::Value> = ran
        .audit
        .iter()
        .filter(|r| r["operation"] == "reread-secret")
        .collect();
    assert!(!kept.is_empty());
    assert!(kept.iter().all(|r| r["outcome"]
        .as_str()
        .unwrap()
        .starts_with("error: unavailable: the last value is kept (read ")));
}

/// A value read again replaces the old one in the next request, and the answer to it is
/// masked for both: every value a run has used stays masked in its answers.
#[tokio::test]
async fn a_value_read_again_replaces_the_old_one_and_answers_stay_masked_for_both() {
    use http_body_util::BodyExt;
    use kvrun::handles::rotation::{Reread, Rereader};
    struct Rotated;
    impl Rereader for Rotated {
        fn reread<'a>(
            &'a self,
            _: &'a str,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reread> + Send + 'a>> {
            Box::pin(async { Ok((SecretString::from("second-value-5678"), Some("v2".into()))) })
        }
    }
    let audit = kvrun::audit::RunAudit::new(
        Arc::new(kvrun::audit::AuditLog::to_writer(
            Box::new(std::io::sink()),
            "rotated",
            common::audit_key(),
        )),
        u64::MAX,
    );
    let binding = "api-token=https://api.example.com".parse().unwrap();
    let handles = kvrun::handles::RunHandles::new(vec![binding], audit, u32::MAX);
    let handle = handles.issue(
        "api-token",
        SecretString::from("first-value-1234"),
        Some("v1".into()),
    );
    handles.reread_with(Arc::new(Rotated), Duration::ZERO);
    let origin = kvrun::policy::Origin::parse("https://api.example.com").unwrap();
    let request = http::Request::get("https://api.example.com/x")
        .header("authorization", format!("Bearer {handle}"))
        .body(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap();
    let guarded = handles.guard(&origin, request).await.unwrap();
    assert_eq!(
        guarded.request.headers()["authorization"],
        "Bearer second-value-5678"
    );
    let mut mask = guarded.echo_mask.unwrap();
    let mut out = Vec::new();
    mask.write(b"old first-value-1234, new second-value-5678\n", &mut out);
    mask.finish(&mut out);
    assert_eq!(String::from_utf8(out).unwrap(), "old ***, new ***\n");
}
