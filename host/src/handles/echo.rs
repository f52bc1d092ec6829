//! The way back: the answer to a request that carried values passes through a masker for
//! those values (and their encoded forms, [`crate::encoded_forms`]) before the run sees it,
//! so a bound service that echoes what it received (headers, a body, a `Location`) hands
//! the run `***`, never the value.
//!
//! Header values are masked one by one; the body is masked as it streams
//! ([`crate::masking::Masker`] holds back what could be the start of a value), and its
//! `Content-Length` is dropped, since masking changes the length.
//!
//! Only whole forms of a value are masked ([`Masker::finish_whole`]), never a trailing
//! beginning of one: masking beginnings made the answer an oracle (a run sent a guess in a
//! header the service echoed and learnt from `***` whether the guess began the value). Each
//! value whose form an answer carried is reported once, as soon as it is masked
//! ([`EchoReport`]), so that it is audited (a run that reads the masked part of a body and
//! drops the rest is reported too) and a run whose answers keep carrying values is stopped.

use crate::masking::Masker;
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// Called when an answer is found to carry a form of values not reported yet for it (in its
/// headers, or as its body streams), with their numbers in the order they were added to the
/// masker; the first call of an answer is the one that counts it as an echo.
pub type EchoReport = Box<dyn FnMut(&[usize]) + Send>;

/// What has been reported of one answer.
struct Reported {
    report: EchoReport,
    values: Vec<usize>,
}

impl Reported {
    /// Reports the values `masker` has masked that were not reported yet.
    fn check(&mut self, masker: &Masker) {
        let new: Vec<usize> = masker
            .matched()
            .iter()
            .copied()
            .filter(|v| !self.values.contains(v))
            .collect();
        if !new.is_empty() {
            self.values.extend(&new);
            (self.report)(&new);
        }
    }
}

/// `response` with every value `masker` knows masked in its headers and body. `masker` is a
/// fresh one, built for the values that went out ([`crate::masking::Masker::add`]); `report`
/// is called if anything was masked.
pub fn mask_response(
    response: http::Response<WasiBody>,
    masker: Masker,
    report: EchoReport,
) -> http::Response<WasiBody> {
    let (mut parts, body) = response.into_parts();
    let mut reported = Reported {
        report,
        values: Vec::new(),
    };
    let mut header_masker = masker.clone();
    mask_headers(&mut header_masker, &mut parts.headers);
    reported.check(&header_masker);
    parts.headers.remove(CONTENT_LENGTH);
    let body = MaskedBody {
        inner: body,
        masker,
        reported,
        trailers: None,
        done: false,
    };
    http::Response::from_parts(parts, body.boxed_unsync())
}

/// Masks every name and value of `headers`, each on its own (`masker` holds nothing back
/// between them: each is finished). A service may echo what it was sent as a header's name as
/// well as its value; HTTP lower-cases names, so a name that holds a value (or a line of one)
/// in any letter case is replaced whole.
fn mask_headers(masker: &mut Masker, headers: &mut HeaderMap) {
    let mut current = None;
    for (name, value) in std::mem::take(headers) {
        if let Some(name) = name {
            let masked = masked(masker, name.as_str().as_bytes());
            current = Some(match masked {
                Some(out) => HeaderName::from_bytes(&out).unwrap_or(MASKED_NAME),
                None if masker.masks_in_any_case(name.as_str().as_bytes()) => MASKED_NAME,
                None => name,
            });
        }
        let value = match masked(masker, value.as_bytes()) {
            Some(out) => HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("***")),
            None => value,
        };
        if let Some(name) = &current {
            headers.append(name.clone(), value);
        }
    }
}

/// What replaces a header name that held a value and cannot be a name once masked.
const MASKED_NAME: HeaderName = HeaderName::from_static("x-kvrun-masked");

/// `text` masked whole, if masking changed it.
fn masked(masker: &mut Masker, text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    masker.write(text, &mut out);
    masker.finish_whole(&mut out);
    (out != text).then_some(out)
}

/// A response body passed through a masker.
struct MaskedBody {
    inner: WasiBody,
    masker: Masker,
    reported: Reported,
    trailers: Option<Frame<Bytes>>,
    done: bool,
}

impl MaskedBody {
    /// Releases what the masker holds back, masked; reports what it masked.
    fn flush(&mut self) -> Option<Frame<Bytes>> {
        let mut out = Vec::new();
        self.masker.finish_whole(&mut out);
        self.reported.check(&self.masker);
        (!out.is_empty()).then(|| Frame::data(Bytes::from(out)))
    }
}

impl Body for MaskedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.trailers.take().map(Ok));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let mut out = Vec::new();
                        this.masker.write(&data, &mut out);
                        this.reported.check(&this.masker);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(trailers) => {
                        this.done = true;
                        // The body's held-back end first, so the masker is empty for the
                        // trailers.
                        let rest = this.flush();
                        this.trailers = trailers.into_trailers().ok().map(|mut t| {
                            mask_headers(&mut this.masker, &mut t);
                            this.reported.check(&this.masker);
                            Frame::trailers(t)
                        });
                        if let Some(data) = rest {
                            return Poll::Ready(Some(Ok(data)));
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.done = true;
                    if let Some(data) = this.flush() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(chunks: &[&'static str]) -> WasiBody {
        let frames: Vec<Result<Frame<Bytes>, HttpError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn trailers_are_masked_and_the_body_end_is_not_mixed_into_them() {
        // The body ends with a beginning of the value: an answer masks whole forms only, so it
        // stays (see the module docs), and it is not mixed into the trailers.
        let mut trailers = HeaderMap::new();
        trailers.insert("x-echo", HeaderValue::from_static("got hunter2-value"));
        let frames: Vec<Result<Frame<Bytes>, HttpError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"tail hunter"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed_unsync();
        let mut masker = Masker::new();
        masker.add(b"hunter2-value");
        let (report, reported) = counter();
        let masked = mask_response(http::Response::new(body), masker, report);
        let collected = masked.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap();
        assert_eq!(trailers["x-echo"], "got ***");
        assert_eq!(&collected.to_bytes()[..], b"tail hunter");
        assert_eq!(reported.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn counter() -> (EchoReport, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = count.clone();
        let report: EchoReport = Box::new(move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        (report, count)
    }

    #[tokio::test]
    async fn a_guess_that_begins_a_value_comes_back_as_sent_and_is_not_reported() {
        let response = http::Response::builder()
            .header("x-request-id", "48756e746572")
            .body(body_of(&["echo: Hunter2-x"]))
            .unwrap();
        let mut masker = Masker::new();
        masker.add(b"Hunter2-xyz-A1b2C3d4");
        let (report, reported) = counter();
        let masked = mask_response(response, masker, report);
        assert_eq!(masked.headers()["x-request-id"], "48756e746572");
        let body = masked.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"echo: Hunter2-x");
        assert_eq!(reported.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn echoed_values_are_masked_in_headers_and_a_split_body() {
        let response = http::Response::builder()
            .header("x-echo", "Bearer hunter2-value")
            .header("x-seen-hunter2-value", "1")
            .header("content-length", "40")
            .header("x-other", "fine")
            .body(body_of(&[
                "{\"authorization\":\"Bearer hun",
                "ter2-val",
                "ue\", \"b64\":\"aHVudGVyMi12YWx1ZQ\"}",
            ]))
            .unwrap();
        let mut masker = Masker::new();
        masker.add(b"hunter2-value");
        let (report, reported) = counter();
        let masked = mask_response(response, masker, report);
        assert_eq!(masked.headers()["x-echo"], "Bearer ***");
        assert_eq!(masked.headers()["x-seen-***"], "1");
        assert_eq!(masked.headers()["x-other"], "fine");
        assert!(masked.headers().get("content-length").is_none());
        let body = masked.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        // The last base64 character also holds bits of what follows, so it is not masked.
        assert_eq!(text, "{\"authorization\":\"Bearer ***\", \"b64\":\"***Q\"}");
        assert_eq!(
            reported.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one report per answer"
        );
    }

    /// HTTP lower-cases header names: a value with capitals echoed in a name is caught too.
    #[tokio::test]
    async fn a_value_echoed_in_a_header_name_is_masked_in_any_case() {
        let response = http::Response::builder()
            .header("X-Seen-Hunter2-Value", "1")
            .header("x-other", "fine")
            .body(body_of(&["{}"]))
            .unwrap();
        let mut masker = Masker::new();
        masker.add(b"Hunter2-Value");
        let (report, reported) = counter();
        let masked = mask_response(response, masker, report);
        assert_eq!(masked.headers()["x-kvrun-masked"], "1");
        assert_eq!(masked.headers()["x-other"], "fine");
        assert_eq!(masked.headers().len(), 2);
        assert_eq!(reported.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// Records every report's values.
    fn recorder() -> (
        EchoReport,
        std::sync::Arc<std::sync::Mutex<Vec<Vec<usize>>>>,
    ) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let report: EchoReport = Box::new(move |values| log.lock().unwrap().push(values.to_vec()));
        (report, seen)
    }

    /// Of two values sent, only the one that came back is reported, once, as soon as it is
    /// masked: a run that reads the first chunk of the body and drops the rest is reported.
    #[tokio::test]
    async fn only_the_values_that_came_back_are_reported_as_soon_as_they_are_masked() {
        let response = http::Response::builder()
            .body(body_of(&[
                "first chunk: second-value-22 and more text than the masker holds back, \
                 which is ten bytes for every byte of the longest value sent: one hundred \
                 and fifty bytes here, so that this chunk is passed on before the next one",
                "second chunk: second-value-22 again",
                "third chunk: first-value-11",
            ]))
            .unwrap();
        let mut masker = Masker::new();
        masker.add(b"first-value-11");
        masker.add(b"second-value-22");
        let (report, seen) = recorder();
        let masked = mask_response(response, masker, report);
        let mut body = masked.into_body();
        let frame = body.frame().await.unwrap().unwrap();
        assert!(frame.data_ref().is_some());
        assert_eq!(
            *seen.lock().unwrap(),
            [vec![1]],
            "reported before the body's end"
        );
        drop(body);
        assert_eq!(*seen.lock().unwrap(), [vec![1]]);
    }
}
