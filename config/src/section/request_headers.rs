//! `[request_headers]`: what clients may not send to upstreams, beyond the built-in contract.

use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigError;
use crate::syntax::Ctx;

/// `[request_headers]`: what clients may not send to upstreams, beyond the built-in contract.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequestHeaders {
    /// Header names removed from every request before it is forwarded (compared in lower case
    /// with `_` read as `-`); a trailing `*` removes every name with that prefix.
    #[serde(default)]
    pub remove: Vec<Spanned<String>>,
}

/// `[request_headers]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    /// Canonical header names (lower case, `-` for `_`) removed from every client request; one
    /// ending in `*` is a prefix.
    pub remove: Vec<String>,
}

/// Header names to remove, canonical: lower case, `_` read as `-` (as the gateway compares
/// them), each a valid field name with an optional trailing `*`.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawRequestHeaders) -> Result<RequestHeaders, ConfigError> {
    let mut remove = Vec::with_capacity(raw.remove.len());
    for entry in &raw.remove {
        let text = entry.get_ref().to_ascii_lowercase().replace('_', "-");
        let name = text.strip_suffix('*').unwrap_or(&text);
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'+-.^`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(ctx.invalid(
                entry.span(),
                format!("{:?} is not a header name (or a name prefix ending in *)", entry.get_ref()),
            ));
        }
        if ["host", "content-length", "transfer-encoding"].contains(&name) {
            return Err(ctx.invalid(entry.span(), format!("{name:?} frames the request and cannot be removed")));
        }
        remove.push(text);
    }
    Ok(RequestHeaders { remove })
}

#[cfg(test)]
mod tests {
    use crate::testing::{MINIMAL, parse};

    #[test]
    fn removed_request_headers_are_canonical_names_or_prefixes() {
        let c = parse(&format!("{MINIMAL}\n[request_headers]\nremove = [\"X_Internal_*\", \"X-Debug\"]\n")).unwrap();
        assert_eq!(c.request_headers.remove, vec!["x-internal-*".to_owned(), "x-debug".to_owned()]);
        for bad in ["\"*\"", "\"a b\"", "\"host\"", "\"Transfer_Encoding\""] {
            assert!(parse(&format!("{MINIMAL}\n[request_headers]\nremove = [{bad}]\n")).is_err(), "{bad}");
        }
    }
}
