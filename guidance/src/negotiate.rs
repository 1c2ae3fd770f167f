//! Which format a client asked for (`Accept`, RFC 9110 §12.5.1), among the three a refusal can be
//! written in. Ranges are weighed by `q`; the most specific range that matches a format gives its
//! weight; ties go to the more specific match, then to problem+json. A malformed range is
//! ignored, never an error: a refusal always gets an answer.

use http::{HeaderMap, HeaderValue, header};

/// A refusal's body format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RFC 9457 `application/problem+json` (the default).
    Problem,
    /// A FHIR `OperationOutcome` (`application/fhir+json`).
    Fhir,
    /// An HTML page for a person.
    Html,
}

impl Format {
    /// Every format, in order of preference when the client weighs them equally.
    const PREFERENCE: [Format; 3] = [Format::Problem, Format::Fhir, Format::Html];

    /// Media types that name this format exactly (specificity 3), and close relatives that also
    /// ask for it (specificity 2: `application/json` is answered with problem+json).
    fn names(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Format::Problem => (&["application/problem+json"], &["application/json"]),
            Format::Fhir => (&["application/fhir+json", "application/json+fhir"], &[]),
            Format::Html => (&["text/html"], &["application/xhtml+xml"]),
        }
    }

    fn top_level(self) -> &'static str {
        match self {
            Format::Problem | Format::Fhir => "application",
            Format::Html => "text",
        }
    }
}

/// Most ranges looked at: a longer `Accept` is not a browser's or a client library's.
const MAX_RANGES: usize = 64;

/// The request's `Accept`, kept for a refusal: the header itself (a reference-counted clone),
/// or its several fields joined. `None` when absent or unreadable.
pub fn accept_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(header::ACCEPT).iter();
    let first = values.next()?;
    let Some(second) = values.next() else { return Some(first.clone()) };
    let mut joined = first.as_bytes().to_vec();
    for v in std::iter::once(second).chain(values) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(v.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// The format an `Accept` value asks for; problem+json when it is absent, says nothing usable,
/// or refuses everything.
pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
    let mut best: Option<(u16, u8, usize)> = None; // (q in thousandths, specificity, preference)
    let mut chosen = Format::Problem;
    for (preference, format) in Format::PREFERENCE.into_iter().enumerate() {
        let (q, specificity) = weight(accept.into_iter(), format);
        if q == 0 {
            continue;
        }
        let key = (q, specificity, usize::MAX - preference);
        if best.is_none_or(|b| key > b) {
            best = Some(key);
            chosen = format;
        }
    }
    chosen
}

/// The weight `Accept` gives `format`: the `q` of the most specific matching range (0 when none
/// matches), and that range's specificity.
fn weight<'a>(values: impl Iterator<Item = &'a HeaderValue>, format: Format) -> (u16, u8) {
    let (exact, related) = format.names();
    let mut found: Option<(u8, u16)> = None;
    let ranges = values.filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).take(MAX_RANGES);
    for range in ranges {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let Some(q) = quality(parts) else { continue };
        let specificity = if exact.contains(&media.as_str()) {
            3
        } else if related.contains(&media.as_str()) {
            2
        } else if media.strip_suffix("/*") == Some(format.top_level()) {
            1
        } else if media == "*/*" {
            0
        } else {
            continue;
        };
        if found.is_none_or(|(s, _)| specificity > s) {
            found = Some((specificity, q));
        }
    }
    found.map_or((0, 0), |(s, q)| (q, s))
}

/// The `q` parameter in thousandths (1000 when absent); `None` when malformed.
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    for param in params {
        let Some((name, value)) = param.split_once('=') else { continue };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let value = value.trim();
        // RFC 9110: "0" to "1", at most three decimals.
        let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
        if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let thousandths =
            fraction.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
        return match whole {
            "0" => Some(thousandths),
            "1" if thousandths == 0 => Some(1000),
            _ => None,
        };
    }
    Some(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> Format {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        negotiate(accept_of(&headers).as_ref())
    }

    #[test]
    fn browsers_get_html_and_programs_get_problem_json() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";
        assert_eq!(accept(&[chrome]), Format::Html);
        assert_eq!(accept(&["text/html, application/xhtml+xml, */*"]), Format::Html, "Edge legacy");
        assert_eq!(accept(&[]), Format::Problem);
        assert_eq!(accept(&["*/*"]), Format::Problem, "curl");
        assert_eq!(accept(&["application/json"]), Format::Problem);
        assert_eq!(accept(&["application/*"]), Format::Problem);
        assert_eq!(accept(&["text/*"]), Format::Html);
        assert_eq!(accept(&["image/png"]), Format::Problem, "nothing acceptable: the default");
    }

    #[test]
    fn q_values_decide_and_the_most_specific_range_gives_the_weight() {
        assert_eq!(accept(&["text/html;q=0.9, application/json"]), Format::Problem);
        assert_eq!(accept(&["text/html, application/json;q=0.5"]), Format::Html);
        assert_eq!(accept(&["text/html;q=0, */*"]), Format::Problem, "html refused explicitly");
        assert_eq!(accept(&["application/problem+json;q=0, text/html;q=0.1"]), Format::Html);
        assert_eq!(accept(&["text/html;level=1;q=0.5 , application/fhir+json;q=0.4"]), Format::Html);
        assert_eq!(accept(&["TEXT/HTML; Q=1.000"]), Format::Html, "case and three decimals");
    }

    #[test]
    fn fhir_clients_get_fhir() {
        assert_eq!(accept(&["application/fhir+json"]), Format::Fhir);
        assert_eq!(accept(&["application/fhir+json, application/json"]), Format::Fhir);
        assert_eq!(accept(&["application/json+fhir"]), Format::Fhir, "the DSTU2 spelling");
        assert_eq!(accept(&["application/json", "application/fhir+json;q=0.5"]), Format::Problem);
        assert_eq!(accept(&["application/fhir+json;fhirVersion=4.0"]), Format::Fhir);
    }

    #[test]
    fn malformed_ranges_are_ignored() {
        assert_eq!(accept(&["text/html;q=2, application/fhir+json;q=0.5"]), Format::Fhir);
        assert_eq!(accept(&["text/html;q=0.12345"]), Format::Problem);
        assert_eq!(accept(&["text/html;q=abc"]), Format::Problem);
        assert_eq!(accept(&[";;,,,=;q=,"]), Format::Problem);
        assert_eq!(accept(&["text/html;q"]), Format::Html, "a parameter without a value is not a q");
        let long = vec!["image/png"; 100].join(",") + ",text/html";
        assert_eq!(accept(&[&long]), Format::Problem, "ranges past the cap are not read");
    }
}
