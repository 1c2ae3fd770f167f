//! A refusal as a response (DESIGN §4): the status, connection close, `Retry-After` and
//! `WWW-Authenticate` of its [`Reason`] (from the one reason table), and a body in the format the
//! client asked for ([`super::negotiate`]) — an HTML page for a person, a FHIR `OperationOutcome`,
//! or RFC 9457 `application/problem+json` — with the same status and stable reason code in each,
//! the request id and what to do now. No internal detail reaches the client: the log line has it.
//! (The gateway adds what every response carries, `X-Request-ID` among it.)

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use spinegate_vocab::{Disposition, Reason};

use super::{Details, Format, Guidance, Refusal};

/// The HTTP status of a disposition (the table holds valid statuses only).
pub fn status_of(d: &Disposition) -> StatusCode {
    StatusCode::from_u16(d.status).expect("the reason table holds valid HTTP statuses")
}

/// The response for a refusal: problem+json with the built-in wording.
#[cfg(test)]
fn respond(reason: Reason, request_id: &HeaderValue) -> Response<Full<Bytes>> {
    refusal_response(
        reason,
        request_id,
        &RefusalContext {
            guidance: Guidance::builtin(),
            format: Format::Problem,
            details: &Details::default(),
            now: 0,
        },
    )
}

/// How to word a refusal for the request that gets it.
#[derive(Debug)]
pub struct RefusalContext<'a> {
    /// The deployment's wording and templates.
    pub guidance: &'a Guidance,
    /// What the client asked for.
    pub format: Format,
    /// What is known about the request and the person.
    pub details: &'a Details<'a>,
    /// Unix seconds.
    pub now: u64,
}

/// The response for a refusal, in the format the client asked for.
pub fn refusal_response(
    reason: Reason,
    request_id: &HeaderValue,
    answer: &RefusalContext<'_>,
) -> Response<Full<Bytes>> {
    let d = reason.disposition();
    let refusal = Refusal {
        reason,
        disposition: d,
        request_id: request_id.to_str().unwrap_or(""),
        details: answer.details,
        now: answer.now,
    };
    let (content_type, body) = answer.guidance.refusal(answer.format, &refusal);
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status_of(&d);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The body depends on Accept; shared caches must not serve one format for another.
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    if answer.format == Format::Html {
        page_headers(headers);
    }
    if let Some(secs) = d.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if d.bearer_challenge {
        headers.insert(header::WWW_AUTHENTICATE, bearer_challenge(reason));
    }
    if d.close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn bearer_challenge(reason: Reason) -> HeaderValue {
    // RFC 6750 §3: every token refusal here is "invalid_token".
    let description = match reason {
        Reason::TokenExpired => "The access token expired",
        Reason::TokenBindingMismatch => "The access token is bound to another certificate",
        _ => "The access token is invalid",
    };
    HeaderValue::from_str(&format!(
        "Bearer realm=\"spinegate\", error=\"invalid_token\", error_description=\"{description}\""
    ))
    .expect("static challenge text is a valid header value")
}

/// Headers for a generated HTML page: nothing but its own inline styles may load or run, it may
/// not be framed, and its type is not second-guessed.
pub fn page_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_has_reason_and_request_id_and_token_refusals_challenge() {
        let id = HeaderValue::from_static("6f1c2a9e-1111-4222-8333-444455556666");
        let response = respond(Reason::TokenExpired, &id);
        assert_eq!(response.status(), 401);
        let challenge = response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""));
        let v: serde_json::Value = serde_json::from_str(&body_of(response)).unwrap();
        assert_eq!(v["reason"], "token_expired");
        assert_eq!(v["request_id"], "6f1c2a9e-1111-4222-8333-444455556666");
        assert_eq!(v["status"], 401);
    }

    fn body_of(response: Response<Full<Bytes>>) -> String {
        let bytes = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(response.into_body()))
            .unwrap()
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Every reason — overloaded and the others no integration test can provoke included — in
    /// each format: the same status and reason code, the content type, and the sentence saying
    /// what happened.
    #[test]
    fn every_reason_in_every_format() {
        let id = HeaderValue::from_static("6f1c2a9e-1111-4222-8333-444455556666");
        for &reason in Reason::ALL {
            let sentence = crate::text::builtin(reason).what_happened[0];
            for format in [Format::Html, Format::Fhir, Format::Problem] {
                let answer =
                    RefusalContext { guidance: Guidance::builtin(), format, details: &Details::default(), now: 0 };
                let response = refusal_response(reason, &id, &answer);
                let status = status_of(&reason.disposition());
                assert_eq!(response.status(), status, "{reason:?} {format:?}");
                assert_eq!(response.headers()[header::VARY], "accept");
                let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
                let text = body_of(response);
                match format {
                    Format::Html => {
                        assert_eq!(content_type, "text/html; charset=utf-8");
                        let escaped = crate::template::escape(sentence);
                        assert!(text.contains(&format!("<p>{escaped}</p>")), "{reason:?}: {text}");
                        assert!(text.contains(&format!("Error code: {} (HTTP {})", reason.code(), status.as_str())));
                        assert!(text.contains(id.to_str().unwrap()));
                        assert!(text.len() < 16 * 1024, "{reason:?}: a page of {} bytes", text.len());
                    }
                    Format::Fhir => {
                        assert_eq!(content_type, "application/fhir+json");
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(v["issue"][0]["code"], reason.fhir_issue_code());
                        assert_eq!(v["issue"][0]["details"]["coding"][0]["code"], reason.code());
                        assert!(v["issue"][0]["details"]["text"].as_str().unwrap().contains(sentence));
                    }
                    Format::Problem => {
                        assert_eq!(content_type, "application/problem+json");
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(v["reason"], reason.code());
                        assert_eq!(v["status"], status.as_u16());
                        assert!(v["detail"].as_str().unwrap().contains(sentence));
                    }
                }
            }
        }
        let overloaded = refusal_response(
            Reason::Overloaded,
            &id,
            &RefusalContext {
                guidance: Guidance::builtin(),
                format: Format::Html,
                details: &Details::default(),
                now: 0,
            },
        );
        assert_eq!(overloaded.headers()[header::RETRY_AFTER], "1");
        assert!(body_of(overloaded).contains("Too many people are using the service at the moment."));
    }

    #[test]
    fn unavailable_reasons_say_when_to_retry() {
        for r in [Reason::RevocationUnavailable, Reason::Overloaded] {
            assert!(respond(r, &HeaderValue::from_static("x")).headers().contains_key(header::RETRY_AFTER));
        }
    }
}
