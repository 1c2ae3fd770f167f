//! The canonical request path: the one form routing, rules, the organisation segment, the audit
//! record and the upstream request all use (DESIGN §2, step 0).
//!
//! What the best proxies do (Envoy's `normalize_path` + `merge_slashes` +
//! `path_with_escaped_slashes_action = REJECT_REQUEST`, RFC 3986 §5.2.4), and what cannot be made
//! unambiguous is refused rather than guessed:
//!
//! - percent-escapes of unreserved characters (`A–Z a–z 0–9 - . _ ~`) are decoded, every other
//!   escape is kept with upper-case hex;
//! - `.` segments are removed and `..` segments remove their parent (after decoding, so `%2e%2e`
//!   is `..`); a `..` above the root is refused;
//! - runs of `/` are merged (a trailing `/` is kept);
//! - refused: an encoded `/` or `\`, a raw `\`, NUL and other control characters (raw or
//!   encoded), non-ASCII (raw or encoded), an escape of `%` followed by two hex digits
//!   (`%252e`, which a server that decodes twice reads as `.`), a malformed escape, a character
//!   RFC 3986 does not allow in a path, and a target that is not origin-form (`*`, empty);
//! - `;` path parameters are kept, but a `.`/`..` segment carrying them (`..;x`, which Tomcat
//!   reads as `..`) is refused, and a route must allow parameters before they reach it: routes
//!   are matched on the path with the parameters cut off, as servlet containers read it.
//!
//! Case is kept: NHS FHIR paths are case-sensitive, and so are route prefixes. The route table
//! refuses a path whose route would differ under ASCII case folding (`/patient/…` when `/Patient`
//! is a route), so an upstream that ignores case cannot be reached through another route.

use std::borrow::Cow;

/// A request path in canonical form, with the query the client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalPath {
    path: String,
    /// Whether some segment carries `;` parameters.
    parameters: bool,
}

/// Why a path cannot be made canonical. Each is refused with 400 `invalid_path`; the label names
/// the rule in logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an origin-form target (`*`, an authority alone, an empty path).
    #[error("the request target is not an absolute path")]
    NotOriginForm,
    /// `%2F` or `%5C`: a separator hidden from the gateway that an upstream may decode.
    #[error("the path has an encoded slash or backslash")]
    EncodedSlash,
    /// A raw `\`, which some servers read as `/`.
    #[error("the path has a backslash")]
    Backslash,
    /// A `..` segment with no parent to remove.
    #[error("the path climbs above the root")]
    AboveRoot,
    /// NUL or another control character, raw or encoded.
    #[error("the path has a control character")]
    ControlCharacter,
    /// A byte above 0x7F, raw or encoded.
    #[error("the path has non-ASCII characters")]
    NonAscii,
    /// `%25` followed by two hex digits: a double encoding.
    #[error("the path is percent-encoded twice")]
    DoubleEncoding,
    /// `%` not followed by two hex digits.
    #[error("the path has a malformed percent-escape")]
    BadEscape,
    /// A character RFC 3986 does not allow in a path (space, quote, `<`, `{` …).
    #[error("the path has a character not allowed in a URI path")]
    BadCharacter,
    /// A `.` or `..` segment with `;` parameters.
    #[error("a dot segment carries path parameters")]
    DotSegmentParameters,
    /// `;` parameters on a route that does not allow them.
    #[error("the route does not allow path parameters")]
    Parameters,
    /// The route would differ if case were ignored.
    #[error("the path's route depends on letter case")]
    CaseAmbiguous,
}

impl PathError {
    /// A stable label for logs.
    pub fn label(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "not_origin_form",
            PathError::EncodedSlash => "encoded_slash",
            PathError::Backslash => "backslash",
            PathError::AboveRoot => "above_root",
            PathError::ControlCharacter => "control_character",
            PathError::NonAscii => "non_ascii",
            PathError::DoubleEncoding => "double_encoding",
            PathError::BadEscape => "bad_escape",
            PathError::BadCharacter => "bad_character",
            PathError::DotSegmentParameters => "dot_segment_parameters",
            PathError::Parameters => "path_parameters",
            PathError::CaseAmbiguous => "case_ambiguous",
        }
    }
}

impl CanonicalPath {
    /// The canonical form of `raw` (the request target's path, without the query).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let bytes = raw.as_bytes();
        if bytes.first() != Some(&b'/') {
            return Err(PathError::NotOriginForm);
        }
        let mut decoded = String::with_capacity(raw.len());
        decode_into(bytes, &mut decoded)?;
        let mut segments: Vec<&str> = Vec::with_capacity(8);
        let mut parameters = false;
        // The decoded text starts with '/', so the first piece is empty.
        let pieces = decoded[1..].split('/');
        let mut trailing_slash = false;
        for segment in pieces {
            trailing_slash = false;
            let name = segment.split(';').next().unwrap_or(segment);
            let has_parameters = name.len() != segment.len();
            match name {
                "." | ".." if has_parameters => return Err(PathError::DotSegmentParameters),
                "" | "." => trailing_slash = true,
                ".." => {
                    segments.pop().ok_or(PathError::AboveRoot)?;
                    trailing_slash = true;
                }
                _ => {
                    parameters |= has_parameters;
                    segments.push(segment);
                }
            }
        }
        let mut path = String::with_capacity(decoded.len());
        for segment in &segments {
            path.push('/');
            path.push_str(segment);
        }
        if trailing_slash || segments.is_empty() {
            path.push('/');
        }
        Ok(Self { path, parameters })
    }

    /// The canonical path.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Whether some segment carries `;` parameters.
    pub fn has_parameters(&self) -> bool {
        self.parameters
    }

    /// The path as routes are matched against it: `;` parameters cut from every segment.
    pub fn for_routing(&self) -> Cow<'_, str> {
        if !self.parameters {
            return Cow::Borrowed(&self.path);
        }
        let mut out = String::with_capacity(self.path.len());
        for segment in self.path.split('/').skip(1) {
            out.push('/');
            out.push_str(segment.split(';').next().unwrap_or(segment));
        }
        Cow::Owned(out)
    }
}

/// Appends `raw` to `out` with unreserved escapes decoded and every other escape upper-cased,
/// refusing what must not appear.
fn decode_into(raw: &[u8], out: &mut String) -> Result<(), PathError> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'%' {
            check_raw(b)?;
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let (Some(&h), Some(&l)) = (raw.get(i + 1), raw.get(i + 2)) else { return Err(PathError::BadEscape) };
        let (Some(hi), Some(lo)) = (hex(h), hex(l)) else { return Err(PathError::BadEscape) };
        let value = hi << 4 | lo;
        match value {
            b'/' | b'\\' => return Err(PathError::EncodedSlash),
            0x00..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            0x80..=0xff => return Err(PathError::NonAscii),
            b'%' if raw.get(i + 3).copied().and_then(hex).is_some()
                && raw.get(i + 4).copied().and_then(hex).is_some() =>
            {
                return Err(PathError::DoubleEncoding);
            }
            v if is_unreserved(v) => out.push(char::from(v)),
            v => {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(v >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(v & 0xf)]));
            }
        }
        i += 3;
    }
    Ok(())
}

/// A byte as sent (not escaped): RFC 3986 `pchar` or `/`.
fn check_raw(b: u8) -> Result<(), PathError> {
    match b {
        b'\\' => Err(PathError::Backslash),
        0x00..=0x1f | 0x7f => Err(PathError::ControlCharacter),
        0x80..=0xff => Err(PathError::NonAscii),
        b'/' | b':' | b'@' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => Ok(()),
        b if is_unreserved(b) => Ok(()),
        _ => Err(PathError::BadCharacter),
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> Result<String, PathError> {
        CanonicalPath::parse(raw).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn ordinary_paths_are_unchanged() {
        for p in ["/", "/metadata", "/Patient/9000000009", "/Patient/", "/a-b_c.d~e/f:g@h!$&'()*+,="] {
            assert_eq!(canon(p).unwrap(), p);
        }
    }

    #[test]
    fn dot_segments_are_resolved_after_decoding_unreserved_escapes() {
        let cases = [
            ("/metadata/../Patient/9000000009", "/Patient/9000000009"),
            ("/metadata/%2e%2e/Patient/9000000009", "/Patient/9000000009"),
            ("/metadata/%2E%2E/Patient/9000000009", "/Patient/9000000009"),
            ("/metadata/.%2e/Patient", "/Patient"),
            ("/Patient/X/RX101/../RX999", "/Patient/X/RX999"),
            ("/./Patient/./9000000009/.", "/Patient/9000000009/"),
            ("/a/b/..", "/a/"),
            ("/a/..", "/"),
            ("/%50atient/%39000000009", "/Patient/9000000009"),
            ("/%7euser/%2D%5F", "/~user/-_"),
        ];
        for (raw, want) in cases {
            assert_eq!(canon(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn slashes_are_merged_and_a_trailing_slash_kept() {
        assert_eq!(canon("//Patient///9000000009").unwrap(), "/Patient/9000000009");
        assert_eq!(canon("/Patient//").unwrap(), "/Patient/");
        assert_eq!(canon("//").unwrap(), "/");
    }

    #[test]
    fn reserved_escapes_stay_encoded_in_upper_case() {
        assert_eq!(canon("/a%20b/%3f/%3b%23").unwrap(), "/a%20b/%3F/%3B%23");
        assert_eq!(canon("/100%25").unwrap(), "/100%25");
    }

    #[test]
    fn ambiguous_paths_are_refused_by_rule() {
        use PathError::*;
        let cases = [
            ("*", NotOriginForm),
            ("", NotOriginForm),
            ("Patient", NotOriginForm),
            ("/..", AboveRoot),
            ("/metadata/../../Patient", AboveRoot),
            ("/%2e%2e/Patient", AboveRoot),
            ("/Patient%2F9000000009", EncodedSlash),
            ("/Patient%2f..%2fadmin", EncodedSlash),
            ("/Patient%5C9000000009", EncodedSlash),
            ("/Patient\\9000000009", Backslash),
            ("/Patient%00.json", ControlCharacter),
            ("/Patient%0a", ControlCharacter),
            ("/Patient/\u{e9}", NonAscii),
            ("/Patient/%C3%A9", NonAscii),
            ("/Patient/%252e%252e/admin", DoubleEncoding),
            ("/Patient/%2", BadEscape),
            ("/Patient/%zz", BadEscape),
            ("/Patient/a b", BadCharacter),
            ("/Patient/<x>", BadCharacter),
            ("/metadata/..;/Patient", DotSegmentParameters),
            ("/metadata/.;x/Patient", DotSegmentParameters),
        ];
        for (raw, want) in cases {
            assert_eq!(CanonicalPath::parse(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn parameters_are_kept_and_cut_for_routing() {
        let p = CanonicalPath::parse("/Patient;jsessionid=1/9000000009;v=2").unwrap();
        assert!(p.has_parameters());
        assert_eq!(p.as_str(), "/Patient;jsessionid=1/9000000009;v=2");
        assert_eq!(p.for_routing(), "/Patient/9000000009");
        let plain = CanonicalPath::parse("/Patient/9000000009").unwrap();
        assert!(!plain.has_parameters());
        assert!(matches!(plain.for_routing(), Cow::Borrowed(_)));
    }

    #[test]
    fn canonical_form_is_a_fixed_point() {
        let inputs = [
            "/metadata/../Patient/9000000009",
            "//a/./b/../c//",
            "/%7e%41/%3b;x=1",
            "/a/b/c/../../d",
            "/Patient;p/..%2e/x",
        ];
        for raw in inputs {
            let Ok(once) = canon(raw) else { continue };
            assert_eq!(canon(&once).unwrap(), once, "{raw}");
        }
    }
}
