//! The canonical authority a request names: from HTTP/2 and HTTP/3's `:authority`, HTTP/1.1's
//! absolute-form target, or `Host`. Routing, `X-Forwarded-Host`/`Forwarded` and (under
//! `host_header = "preserve"`) the upstream's `Host` all use this one value.
//!
//! A host is lower-cased and loses a trailing dot (`Spine.Example.` is `spine.example`), so a
//! host-specific route cannot be skipped by spelling. Refused with 400 `invalid_host`: more than
//! one `Host`; a `Host` that disagrees with `:authority` or the absolute-form target (RFC 9113
//! §8.3.1, RFC 9112 §3.2.2); user information; a port that is not a number up to 65535;
//! characters that are not a host name, IPv4 address or bracketed IPv6 address.

use http::HeaderMap;

/// A request's host and port, canonical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalAuthority {
    /// `host` or `host:port`, as forwarded (lower case, no trailing dot).
    text: String,
    /// Length of the host part of `text`.
    host_len: usize,
    port: Option<u16>,
}

/// Why the authority is refused. Each is 400 `invalid_host`; the label names the rule in logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// Two or more `Host` fields.
    #[error("more than one Host header")]
    DuplicateHost,
    /// `Host` names another authority than the target.
    #[error("Host disagrees with the request target's authority")]
    Mismatch,
    /// Not a host name, IP address, or port.
    #[error("the host is malformed")]
    Malformed,
}

impl AuthorityError {
    /// A stable label for logs.
    pub fn label(self) -> &'static str {
        match self {
            AuthorityError::DuplicateHost => "duplicate_host",
            AuthorityError::Mismatch => "host_mismatch",
            AuthorityError::Malformed => "malformed_host",
        }
    }
}

impl CanonicalAuthority {
    /// The authority of a request with `target` (the URI's authority, if any) and `headers`;
    /// `None` when it names none (HTTP/1.0 without `Host`, or an empty `Host`).
    pub fn of_request(
        target: Option<&http::uri::Authority>,
        headers: &HeaderMap,
    ) -> Result<Option<Self>, AuthorityError> {
        let mut hosts = headers.get_all(http::header::HOST).iter();
        let host = hosts.next();
        if hosts.next().is_some() {
            return Err(AuthorityError::DuplicateHost);
        }
        let from_host = match host {
            Some(v) if !v.is_empty() => Some(Self::parse(v.to_str().map_err(|_| AuthorityError::Malformed)?)?),
            _ => None,
        };
        let from_target = target.map(|a| Self::parse(a.as_str())).transpose()?;
        match (from_target, from_host) {
            (Some(t), Some(h)) if !t.same_origin(&h) => Err(AuthorityError::Mismatch),
            (Some(t), _) => Ok(Some(t)),
            (None, h) => Ok(h),
        }
    }

    /// Parses `host[:port]` or `[v6]:port`.
    pub fn parse(text: &str) -> Result<Self, AuthorityError> {
        if text.contains('@') {
            return Err(AuthorityError::Malformed);
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or(AuthorityError::Malformed)?;
            v6.parse::<std::net::Ipv6Addr>().map_err(|_| AuthorityError::Malformed)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(AuthorityError::Malformed)?),
            };
            (&text[..v6.len() + 2], port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse::<u16>().map_err(|_| AuthorityError::Malformed)?)
            }
            Some(_) => return Err(AuthorityError::Malformed),
        };
        let host = if host.starts_with('[') { host } else { host.strip_suffix('.').unwrap_or(host) };
        let valid = host.starts_with('[')
            || (!host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                }));
        if !valid {
            return Err(AuthorityError::Malformed);
        }
        let mut out = host.to_ascii_lowercase();
        let host_len = out.len();
        if let Some(port) = port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        Ok(Self { text: out, host_len, port })
    }

    /// The host, lower case, without port or trailing dot (an IPv6 literal keeps its brackets).
    pub fn host(&self) -> &str {
        &self.text[..self.host_len]
    }

    /// `host[:port]` as the client named it, canonical.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Same host, and the same port once a missing port is read as HTTPS's 443.
    pub fn same_origin(&self, other: &Self) -> bool {
        self.host() == other.host() && self.port.unwrap_or(443) == other.port.unwrap_or(443)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn of(target: Option<&str>, hosts: &[&str]) -> Result<Option<String>, AuthorityError> {
        let target = target.map(|t| t.parse::<http::uri::Authority>().unwrap());
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(http::header::HOST, HeaderValue::from_str(h).unwrap());
        }
        CanonicalAuthority::of_request(target.as_ref(), &headers).map(|a| a.map(|a| a.as_str().to_owned()))
    }

    #[test]
    fn hosts_are_lower_cased_and_lose_a_trailing_dot() {
        assert_eq!(of(None, &["Spine.Example."]).unwrap().unwrap(), "spine.example");
        assert_eq!(of(None, &["SPINE.example.:8443"]).unwrap().unwrap(), "spine.example:8443");
        assert_eq!(of(None, &["[::1]:8443"]).unwrap().unwrap(), "[::1]:8443");
        assert_eq!(of(None, &["127.0.0.1"]).unwrap().unwrap(), "127.0.0.1");
        let a = CanonicalAuthority::parse("Spine.Example.:8443").unwrap();
        assert_eq!(a.host(), "spine.example");
    }

    #[test]
    fn target_authority_wins_and_must_agree_with_host() {
        assert_eq!(of(Some("spine.example"), &[]).unwrap().unwrap(), "spine.example");
        assert_eq!(of(Some("spine.example:443"), &["SPINE.EXAMPLE."]).unwrap().unwrap(), "spine.example:443");
        assert_eq!(of(Some("spine.example"), &["other.example"]), Err(AuthorityError::Mismatch));
        assert_eq!(of(Some("spine.example:8443"), &["spine.example"]), Err(AuthorityError::Mismatch));
    }

    #[test]
    fn duplicate_and_malformed_hosts_are_refused() {
        assert_eq!(of(None, &["a.example", "b.example"]), Err(AuthorityError::DuplicateHost));
        for bad in
            ["a b", "user@spine.example", "spine.example:99999", "spine.example:x", "a..b", "[::1", "[zz]:1", ":443"]
        {
            assert_eq!(of(None, &[bad]), Err(AuthorityError::Malformed), "{bad}");
        }
        assert_eq!(of(None, &[""]).unwrap(), None, "an empty Host names nothing");
        assert_eq!(of(None, &[]).unwrap(), None);
    }
}
