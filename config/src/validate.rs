//! Raw file -> validated [`Config`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::error::{ConfigError, Location};
use crate::model::*;
use crate::raw::*;

/// Carries the text and file name so every check can point at its span.
pub(crate) struct Ctx<'a> {
    text: &'a str,
    origin: Option<&'a Path>,
    base: &'a Path,
}

impl Ctx<'_> {
    pub(crate) fn invalid(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        // Defaults carry the empty span 0..0; point at the file start for them.
        ConfigError::Invalid {
            location: Location::of_span(self.text, &span, self.origin.map(Path::to_path_buf)),
            message: message.into(),
        }
    }

    pub(crate) fn global(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Global { file: self.origin.map(Path::to_path_buf), message: message.into() }
    }

    pub(crate) fn path(&self, p: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        if p.get_ref().trim().is_empty() {
            return Err(self.invalid(p.span(), "path is empty"));
        }
        let path = Path::new(p.get_ref());
        Ok(if path.is_absolute() { path.to_path_buf() } else { self.base.join(path) })
    }

    fn addr(&self, s: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
        s.get_ref().parse().map_err(|e| {
            self.invalid(
                s.span(),
                format!("{:?} is not a socket address (write e.g. \"0.0.0.0:8443\"): {e}", s.get_ref()),
            )
        })
    }

    pub(crate) fn nonzero(&self, n: &Spanned<u64>, what: &str) -> Result<NonZeroUsize, ConfigError> {
        usize::try_from(*n.get_ref())
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| self.invalid(n.span(), format!("{what} must be at least 1")))
    }
}

pub(crate) fn validate(text: &str, origin: Option<&Path>, base: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        location: Location::of_span(text, &e.span().unwrap_or(0..0), origin.map(Path::to_path_buf)),
        message: e.message().trim().to_owned(),
    })?;
    let ctx = Ctx { text, origin, base };

    let admin = Admin {
        listen: ctx.addr(&raw.admin.listen)?,
        max_connections: ctx.nonzero(&raw.admin.max_connections, "max_connections")?,
        header_read_timeout: positive(&ctx, &raw.admin.header_read_timeout, "[admin] header_read_timeout")?,
    };
    let listeners = listeners(&ctx, &raw.listener)?;
    let upstreams = upstreams(&ctx, &raw.upstream)?;
    let authorization = crate::authz::authorization(&ctx, &raw.authorization)?;
    let routes = routes(&ctx, &raw.route, &upstreams, &authorization)?;
    let identity_assertion = crate::authz::identity_assertion(&ctx, raw.identity_assertion.as_ref())?;
    if identity_assertion.is_none()
        && let Some(r) = raw.route.iter().find(|r| r.get_ref().identity_assertion)
    {
        return Err(ctx.invalid(r.span(), "identity_assertion = true needs an [identity_assertion] section"));
    }
    let client_auth = client_auth(&ctx, &raw.client_auth)?;

    let chain_cache = ChainCacheOptions {
        max_entries: NonZeroU64::new(*raw.chain_cache.max_entries.get_ref())
            .ok_or_else(|| ctx.invalid(raw.chain_cache.max_entries.span(), "max_entries must be at least 1"))?,
        max_ttl: raw.chain_cache.max_ttl.0,
    };

    let l = &raw.limits;
    let limits = Limits {
        max_request_header_bytes: ctx.nonzero(&l.max_request_header_bytes, "max_request_header_bytes")?,
        max_request_body_bytes: l.max_request_body_bytes,
        header_read_timeout: positive(&ctx, &l.header_read_timeout, "header_read_timeout")?,
        idle_timeout: positive(&ctx, &l.idle_timeout, "idle_timeout")?,
        body_read_timeout: positive(&ctx, &l.body_read_timeout, "body_read_timeout")?,
        min_body_rate: l.min_body_rate,
        send_timeout: positive(&ctx, &l.send_timeout, "send_timeout")?,
        max_concurrent_streams: u32::try_from(*l.max_concurrent_streams.get_ref())
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ctx.invalid(l.max_concurrent_streams.span(), "max_concurrent_streams must be 1 to 1000"))?,
        handshake_timeout: l.handshake_timeout.0,
        max_connections: ctx.nonzero(&l.max_connections, "max_connections")?,
    };
    if limits.max_request_header_bytes.get() < 1024 {
        return Err(ctx.invalid(
            l.max_request_header_bytes.span(),
            "max_request_header_bytes below 1024 would refuse ordinary requests",
        ));
    }

    Ok(Config {
        admin,
        listeners,
        client_auth,
        chain_cache,
        limits,
        revocation: revocation(&ctx, &raw.revocation)?,
        guidance: crate::guidance::guidance(&ctx, &raw.guidance, raw.tokens.backchannel_logout_path.get_ref())?,
        tokens: tokens(&ctx, &raw.tokens)?,
        token_issuers: token_issuers(&ctx, &raw.token_issuer)?,
        upstreams,
        routes,
        request_headers: request_headers(&ctx, &raw.request_headers)?,
        log: Log { level: raw.log.level, format: raw.log.format },
        role_directory: crate::authz::role_directory(&ctx, &raw.role_directory)?,
        audit: crate::authz::audit(&ctx, &raw.audit)?,
        identity_assertion,
        authorization,
    })
}

fn listeners(ctx: &Ctx<'_>, raw: &[Spanned<RawListener>]) -> Result<Vec<Listener>, ConfigError> {
    if raw.is_empty() {
        return Err(ctx.global("no [[listener]] is configured; spinegate needs at least one"));
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for spanned in raw {
        let l = spanned.get_ref();
        if !names.insert(l.name.get_ref().clone()) {
            return Err(ctx.invalid(l.name.span(), format!("listener name {:?} is used twice", l.name.get_ref())));
        }
        let listen = ctx.addr(&l.listen)?;
        if !addrs.insert(listen) {
            return Err(ctx.invalid(l.listen.span(), format!("address {listen} is used by two listeners")));
        }
        out.push(Listener {
            name: l.name.get_ref().clone(),
            listen,
            client_certificate: l.client_certificate,
            tls_versions: tls_versions(ctx, &l.tls_versions)?,
            alpn: alpn(ctx, &l.alpn)?,
            session_resumption: l.session_resumption,
            certificate_problems: l.certificate_problems,
            certificates: server_certificates(ctx, spanned)?,
            http3: l.http3.as_ref().map(|h| http3(ctx, h, &l.tls_versions)).transpose()?,
        });
    }
    Ok(out)
}

fn http3(ctx: &Ctx<'_>, raw: &Spanned<RawHttp3>, tls_versions: &Spanned<Vec<String>>) -> Result<Http3, ConfigError> {
    if !tls_versions.get_ref().iter().any(|v| v == "1.3") {
        return Err(ctx.invalid(raw.span(), "[listener.http3] needs TLS 1.3 in tls_versions (QUIC is TLS 1.3 only)"));
    }
    let h = raw.get_ref();
    let streams = *h.max_concurrent_streams.get_ref();
    if !(1..=10_000).contains(&streams) {
        return Err(ctx.invalid(h.max_concurrent_streams.span(), "max_concurrent_streams must be 1 to 10000"));
    }
    let buffer = |n: &Spanned<u64>, what: &str| {
        usize::try_from(*n.get_ref())
            .ok()
            .filter(|b| (64 * 1024..=256 * 1024 * 1024).contains(b))
            .ok_or_else(|| ctx.invalid(n.span(), format!("{what} must be 64 KiB to 256 MiB")))
    };
    let idle = h.transport_idle_timeout.get_ref().0;
    if idle < Duration::from_secs(1) || idle > Duration::from_secs(3600) {
        return Err(ctx.invalid(h.transport_idle_timeout.span(), "transport_idle_timeout must be 1s to 1h"));
    }
    Ok(Http3 {
        max_connections: ctx.nonzero(&h.max_connections, "max_connections")?,
        max_concurrent_streams: u32::try_from(streams).expect("checked above"),
        udp_receive_buffer: buffer(&h.udp_receive_buffer, "udp_receive_buffer")?,
        udp_send_buffer: buffer(&h.udp_send_buffer, "udp_send_buffer")?,
        transport_idle_timeout: idle,
        alt_svc: h.alt_svc,
        alt_svc_max_age: h.alt_svc_max_age.0,
    })
}

fn tls_versions(ctx: &Ctx<'_>, raw: &Spanned<Vec<String>>) -> Result<Vec<TlsVersion>, ConfigError> {
    let mut out = Vec::new();
    for v in raw.get_ref() {
        let version = match v.as_str() {
            "1.3" => TlsVersion::Tls13,
            "1.2" => TlsVersion::Tls12,
            other => {
                return Err(
                    ctx.invalid(raw.span(), format!("unsupported TLS version {other:?}; use \"1.3\" and/or \"1.2\""))
                );
            }
        };
        if out.contains(&version) {
            return Err(ctx.invalid(raw.span(), format!("TLS version {v:?} is listed twice")));
        }
        out.push(version);
    }
    if out.is_empty() {
        return Err(ctx.invalid(raw.span(), "tls_versions is empty"));
    }
    Ok(out)
}

fn alpn(ctx: &Ctx<'_>, raw: &Spanned<Vec<String>>) -> Result<Vec<Alpn>, ConfigError> {
    let mut out = Vec::new();
    for v in raw.get_ref() {
        let proto = match v.as_str() {
            "h2" => Alpn::H2,
            "http/1.1" => Alpn::Http11,
            other => {
                return Err(ctx.invalid(
                    raw.span(),
                    format!("unsupported ALPN protocol {other:?}; use \"h2\" and/or \"http/1.1\""),
                ));
            }
        };
        if out.contains(&proto) {
            return Err(ctx.invalid(raw.span(), format!("ALPN protocol {v:?} is listed twice")));
        }
        out.push(proto);
    }
    if out.is_empty() {
        return Err(ctx.invalid(raw.span(), "alpn is empty"));
    }
    Ok(out)
}

fn server_certificates(ctx: &Ctx<'_>, listener: &Spanned<RawListener>) -> Result<Vec<ServerCertificate>, ConfigError> {
    let raw = &listener.get_ref().certificate;
    if raw.is_empty() {
        return Err(ctx.invalid(
            listener.span(),
            format!("listener {:?} has no [[listener.certificate]]", listener.get_ref().name.get_ref()),
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for c in raw {
        let c = c.get_ref();
        let mut server_names = Vec::with_capacity(c.server_names.len());
        for name in &c.server_names {
            let lower = name.get_ref().trim().to_ascii_lowercase();
            if lower.is_empty() || lower.contains(|ch: char| ch.is_whitespace() || ch == '/' || ch == ':') {
                return Err(ctx.invalid(name.span(), format!("{:?} is not a DNS name", name.get_ref())));
            }
            server_names.push(lower);
        }
        // Several certificates may serve one name (or be the default) when their key types
        // differ; the gateway checks that when it loads the keys.
        out.push(ServerCertificate { cert: ctx.path(&c.cert)?, key: ctx.path(&c.key)?, server_names });
    }
    Ok(out)
}

fn client_auth(ctx: &Ctx<'_>, raw: &RawClientAuth) -> Result<ClientAuth, ConfigError> {
    let max_chain_length = ctx.nonzero(&raw.max_chain_length, "max_chain_length")?;
    // webpki builds paths of at most six intermediates plus leaf and anchor.
    if !(2..=8).contains(&max_chain_length.get()) {
        return Err(ctx.invalid(
            raw.max_chain_length.span(),
            "max_chain_length counts the leaf and the trust anchor: it must be between 2 and 8",
        ));
    }
    let default_identity = identity_rule(ctx, &raw.identity)?;
    if let Some(files) = &raw.revocation.crl_files {
        return Err(ctx.invalid(
            files.span(),
            "crl_files belong under a [[client_auth.issuer]]: a CRL is checked against its issuer's certificate",
        ));
    }
    if let Some(urls) = &raw.revocation.crl_urls {
        return Err(ctx.invalid(
            urls.span(),
            "crl_urls belong under a [[client_auth.issuer]]: a CRL is checked against its issuer's certificate",
        ));
    }
    let default_revocation = revocation_policy(ctx, &raw.revocation, &RawRevocationPolicy::default())?;
    let mut names = HashSet::new();
    let mut issuers = Vec::with_capacity(raw.issuer.len());
    for i in &raw.issuer {
        let i = i.get_ref();
        if !names.insert(i.name.get_ref().clone()) {
            return Err(ctx.invalid(i.name.span(), format!("issuer name {:?} is used twice", i.name.get_ref())));
        }
        issuers.push(Issuer {
            name: i.name.get_ref().clone(),
            certificate: ctx.path(&i.certificate)?,
            identity: match &i.identity {
                Some(rule) => identity_rule(ctx, rule)?,
                None => default_identity.clone(),
            },
            revocation: match &i.revocation {
                Some(own) => revocation_policy(ctx, own, &raw.revocation)?,
                None => default_revocation.clone(),
            },
        });
    }
    Ok(ClientAuth {
        trust_anchors: raw.trust_anchors.iter().map(|p| ctx.path(p)).collect::<Result<_, _>>()?,
        intermediates: raw.intermediates.iter().map(|p| ctx.path(p)).collect::<Result<_, _>>()?,
        max_chain_length,
        max_chain_bytes: ctx.nonzero(&raw.max_chain_bytes, "max_chain_bytes")?,
        client_auth_eku: raw.client_auth_eku,
        revocation_depth: raw.revocation_depth,
        expiry_warning: raw.expiry_warning.0,
        identity: default_identity,
        revocation: default_revocation,
        issuers,
    })
}

/// A policy from `own`, with unset keys taken from `fallback`, then from the defaults.
fn revocation_policy(
    ctx: &Ctx<'_>,
    own: &RawRevocationPolicy,
    fallback: &RawRevocationPolicy,
) -> Result<RevocationPolicy, ConfigError> {
    let defaults = RevocationPolicy::default();
    let sources = match own.sources.as_ref().or(fallback.sources.as_ref()) {
        None => defaults.sources,
        Some(list) => {
            let mut out = Vec::new();
            for s in list.get_ref() {
                let source = match s.get_ref().as_str() {
                    "ocsp" => Source::Ocsp,
                    "crl" => Source::Crl,
                    other => {
                        return Err(ctx.invalid(
                            s.span(),
                            format!("unknown revocation source {other:?}; use \"ocsp\" and/or \"crl\""),
                        ));
                    }
                };
                if out.contains(&source) {
                    return Err(ctx.invalid(s.span(), format!("source {:?} is listed twice", s.get_ref())));
                }
                out.push(source);
            }
            out
        }
    };
    let unknown = match own.unknown.or(fallback.unknown) {
        None | Some(RawUnknown::Refuse) => UnknownStatus::Refuse,
        Some(RawUnknown::ServeStaleFor(d)) => UnknownStatus::ServeStaleFor(d.0),
    };
    let responder = match own.ocsp_responder.as_ref().or(fallback.ocsp_responder.as_ref()) {
        Some(url) => Some(http_url(ctx, url)?),
        None => None,
    };
    let ocsp = OcspSettings {
        responder,
        nonce: match own.ocsp_nonce.or(fallback.ocsp_nonce) {
            Some(RawNonce::Send) => NoncePolicy::Send,
            Some(RawNonce::Omit) | None => NoncePolicy::Omit,
        },
        hash: match own.ocsp_hash.or(fallback.ocsp_hash) {
            Some(RawHash::Sha1) => CertIdHash::Sha1,
            Some(RawHash::Sha256) | None => CertIdHash::Sha256,
        },
        method: match own.ocsp_method.or(fallback.ocsp_method) {
            Some(RawMethod::Get) => OcspMethod::Get,
            Some(RawMethod::Post) => OcspMethod::Post,
            Some(RawMethod::Auto) | None => OcspMethod::Auto,
        },
    };
    let crl_files = match &own.crl_files {
        Some(files) => files.get_ref().iter().map(|f| ctx.path(f)).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let crl_urls = match &own.crl_urls {
        Some(urls) => urls.get_ref().iter().map(|u| http_url(ctx, u)).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    Ok(RevocationPolicy { sources, unknown, ocsp, crl_files, crl_urls })
}

fn http_url(ctx: &Ctx<'_>, url: &Spanned<String>) -> Result<String, ConfigError> {
    let ok = url.get_ref().parse::<http::Uri>().is_ok_and(|u| u.scheme_str() == Some("http") && u.host().is_some());
    if ok {
        Ok(url.get_ref().clone())
    } else {
        Err(ctx.invalid(
            url.span(),
            format!(
                "{:?} is not an http:// URL (OCSP and CRL fetches are plain HTTP: the data is signed)",
                url.get_ref()
            ),
        ))
    }
}

/// JWS algorithms a token issuer may name.
fn tokens(ctx: &Ctx<'_>, raw: &RawTokens) -> Result<Tokens, ConfigError> {
    let path = raw.backchannel_logout_path.get_ref();
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(
            ctx.invalid(raw.backchannel_logout_path.span(), "backchannel_logout_path must be a path starting with /")
        );
    }
    Ok(Tokens {
        options: TokenOptions {
            cache_entries: raw.cache_entries,
            max_token_bytes: ctx.nonzero(&raw.max_token_bytes, "max_token_bytes")?.get(),
        },
        backchannel_logout_path: path.clone(),
    })
}

fn token_issuers(ctx: &Ctx<'_>, raw: &[Spanned<RawTokenIssuer>]) -> Result<Vec<TokenIssuer>, ConfigError> {
    let mut names = HashSet::new();
    let mut issuers = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for spanned in raw {
        let t = spanned.get_ref();
        if !names.insert(t.name.get_ref().clone()) {
            return Err(ctx.invalid(t.name.span(), format!("token issuer name {:?} is used twice", t.name.get_ref())));
        }
        if !issuers.insert(t.issuer.get_ref().clone()) {
            return Err(ctx.invalid(t.issuer.span(), "another [[token_issuer]] has the same issuer"));
        }
        let keys = match (&t.jwks_url, &t.discovery_url) {
            (Some(url), None) => KeySource::Jwks(key_url(ctx, url)?),
            (None, Some(url)) => KeySource::Discovery(key_url(ctx, url)?),
            _ => return Err(ctx.invalid(spanned.span(), "give exactly one of jwks_url and discovery_url")),
        };
        if t.audiences.get_ref().is_empty() {
            return Err(ctx.invalid(t.audiences.span(), "audiences is empty: no token could be accepted"));
        }
        let mut algorithms = Vec::new();
        for alg in t.algorithms.get_ref() {
            let name = alg.get_ref();
            // Only asymmetric algorithms exist to be named: no HMAC, no `none`.
            let parsed = TokenAlgorithm::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = TokenAlgorithm::ALL.iter().map(|a| a.name()).collect();
                ctx.invalid(
                    alg.span(),
                    format!("algorithm {name:?} is not accepted; use asymmetric algorithms: {}", known.join(", ")),
                )
            })?;
            algorithms.push(parsed);
        }
        if algorithms.is_empty() {
            return Err(ctx.invalid(t.algorithms.span(), "algorithms is empty"));
        }
        out.push(TokenIssuer {
            options: TokenIssuerOptions {
                name: t.name.get_ref().clone(),
                issuer: t.issuer.get_ref().clone(),
                keys,
                audiences: t.audiences.get_ref().clone(),
                algorithms,
                clock_skew: t.clock_skew.0,
                max_token_age: t.max_token_age.0,
                required_claims: t.required_claims.clone(),
                jwks: JwksOptions {
                    ttl: t.jwks_ttl.0,
                    max_staleness: t.jwks_max_staleness.0,
                    refetch_interval: t.jwks_refetch_interval.0,
                },
            },
            jwks_ca: t.jwks_ca.iter().map(|p| ctx.path(p)).collect::<Result<_, _>>()?,
        });
    }
    Ok(out)
}

/// Key material travels over https, or plain http only to this machine (development).
fn key_url(ctx: &Ctx<'_>, url: &Spanned<String>) -> Result<String, ConfigError> {
    let parsed: Option<http::Uri> = url.get_ref().parse().ok();
    let loopback = |host: &str| {
        host == "localhost"
            || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    let ok = parsed.as_ref().is_some_and(|u| match (u.scheme_str(), u.host()) {
        (Some("https"), Some(_)) => true,
        (Some("http"), Some(host)) => loopback(host),
        _ => false,
    });
    if ok {
        Ok(url.get_ref().clone())
    } else {
        Err(ctx.invalid(
            url.span(),
            format!("{:?}: signing keys must come over https (plain http only from localhost)", url.get_ref()),
        ))
    }
}

fn revocation(ctx: &Ctx<'_>, raw: &RawRevocation) -> Result<Revocation, ConfigError> {
    Ok(Revocation {
        options: RevocationOptions {
            max_entries: *raw.max_entries.get_ref(),
            max_age: raw.max_age.0,
            refresh_before: raw.refresh_before.0,
            recently_seen: raw.recently_seen.0,
            fetch_timeout: raw.fetch_timeout.0,
            max_ocsp_response_bytes: usize::try_from(raw.max_ocsp_response_bytes).unwrap_or(usize::MAX),
            max_crl_bytes: usize::try_from(raw.max_crl_bytes).unwrap_or(usize::MAX),
            clock_skew: raw.clock_skew.0,
            retry_after_failure: raw.retry_after_failure.0,
            crl_refresh_before: raw.crl_refresh_before.0,
            ..RevocationOptions::default()
        },
        deny_list: raw.deny_list.as_ref().map(|p| ctx.path(p)).transpose()?,
        admin_token_file: raw.admin_token_file.as_ref().map(|p| ctx.path(p)).transpose()?,
    })
}

fn identity_rule(ctx: &Ctx<'_>, raw: &RawIdentityRule) -> Result<IdentityRule, ConfigError> {
    let user_id = match raw.user_id {
        UserIdField::SubjectCnPrefix => {
            let mut chars = raw.separator.get_ref().chars();
            match (chars.next(), chars.next()) {
                (Some(separator), None) if !separator.is_ascii_digit() => UserIdSource::SubjectCnPrefix { separator },
                _ => {
                    return Err(
                        ctx.invalid(raw.separator.span(), "separator must be exactly one character, and not a digit")
                    );
                }
            }
        }
        UserIdField::SubjectSerialNumber => UserIdSource::SubjectSerialNumber,
        UserIdField::SubjectUid => UserIdSource::SubjectUid,
    };
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(IdentityRule { user_id, require_ou: non_empty(&raw.subject_ou), require_o: non_empty(&raw.subject_o) })
}

fn upstreams(ctx: &Ctx<'_>, raw: &[Spanned<RawUpstream>]) -> Result<Vec<Upstream>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for spanned in raw {
        let u = spanned.get_ref();
        if !names.insert(u.name.get_ref().clone()) {
            return Err(ctx.invalid(u.name.span(), format!("upstream name {:?} is used twice", u.name.get_ref())));
        }
        if u.endpoints.get_ref().is_empty() {
            return Err(ctx.invalid(u.endpoints.span(), "endpoints is empty"));
        }
        let endpoints = u.endpoints.get_ref().iter().map(|e| endpoint(ctx, e)).collect::<Result<Vec<_>, _>>()?;
        let tls_endpoints = endpoints.iter().filter(|e| e.tls).count();
        if tls_endpoints != 0 && tls_endpoints != endpoints.len() {
            return Err(
                ctx.invalid(u.endpoints.span(), "endpoints mix http:// and https://; use one scheme per upstream")
            );
        }
        let tls = match (&u.tls, tls_endpoints != 0) {
            (Some(t), true) => Some(upstream_tls(ctx, t)?),
            (None, false) => None,
            (None, true) => {
                return Err(ctx.invalid(
                    u.endpoints.span(),
                    "https:// endpoints need an [upstream.tls] table naming the CA that signs them",
                ));
            }
            (Some(_), false) => {
                return Err(ctx.invalid(spanned.span(), "[upstream.tls] is set but the endpoints are http://"));
            }
        };
        out.push(Upstream {
            name: u.name.get_ref().clone(),
            endpoints,
            protocol: u.protocol,
            connect_timeout: u.connect_timeout.0,
            response_timeout: u.response_timeout.0,
            pool_idle_timeout: u.pool_idle_timeout.0,
            pool_max_idle_per_endpoint: usize::try_from(u.pool_max_idle_per_endpoint).unwrap_or(usize::MAX),
            host_header: u.host_header,
            tls,
        });
    }
    Ok(out)
}

fn endpoint(ctx: &Ctx<'_>, raw: &Spanned<String>) -> Result<Endpoint, ConfigError> {
    let bad = |why: &str| ctx.invalid(raw.span(), format!("endpoint {:?}: {why}", raw.get_ref()));
    let uri: http::Uri = raw.get_ref().parse().map_err(|_| bad("not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("scheme must be http:// or https://")),
    };
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(bad("give only scheme, host and port; paths are not rewritten"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user information is not allowed"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Endpoint { tls, host, port })
}

fn upstream_tls(ctx: &Ctx<'_>, raw: &RawUpstreamTls) -> Result<UpstreamTls, ConfigError> {
    if raw.ca.get_ref().is_empty() {
        return Err(ctx.invalid(raw.ca.span(), "ca is empty; name the CA that signs the upstream's certificate"));
    }
    let client_identity = match (&raw.client_certificate, &raw.client_key) {
        (Some(c), Some(k)) => Some((ctx.path(c)?, ctx.path(k)?)),
        (None, None) => None,
        (Some(c), None) => return Err(ctx.invalid(c.span(), "client_certificate needs client_key")),
        (None, Some(k)) => return Err(ctx.invalid(k.span(), "client_key needs client_certificate")),
    };
    Ok(UpstreamTls {
        ca: raw.ca.get_ref().iter().map(|p| ctx.path(p)).collect::<Result<_, _>>()?,
        client_identity,
        server_name: match &raw.server_name {
            Some(s) if is_server_name(s.get_ref()) => Some(s.get_ref().clone()),
            Some(s) => return Err(ctx.invalid(s.span(), format!("{:?} is not a DNS name or IP address", s.get_ref()))),
            None => None,
        },
    })
}

/// A DNS name (letters, digits, hyphens, dots; labels of 1–63) or an IP literal.
fn is_server_name(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn routes(
    ctx: &Ctx<'_>,
    raw: &[Spanned<RawRoute>],
    upstreams: &[Upstream],
    authorization: &crate::authz::Authorization,
) -> Result<Vec<Route>, ConfigError> {
    let mut activities = std::collections::BTreeSet::new();
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let r = r.get_ref();
        if !names.insert(r.name.get_ref().clone()) {
            return Err(ctx.invalid(r.name.span(), format!("route name {:?} is used twice", r.name.get_ref())));
        }
        let prefix = r.path_prefix.get_ref();
        if let Err(why) = canonical_prefix(prefix) {
            return Err(ctx.invalid(r.path_prefix.span(), format!("path_prefix {prefix:?} {why}")));
        }
        let path_prefix = if prefix.len() > 1 { prefix.trim_end_matches('/') } else { prefix }.to_owned();
        let host = r.host.as_ref().map(|h| h.get_ref().trim_end_matches('.').to_ascii_lowercase());
        // Prefixes that differ only in case would make the gateway's case check refuse both.
        if !keys.insert((host.clone(), path_prefix.to_ascii_lowercase())) {
            return Err(ctx
                .invalid(r.path_prefix.span(), "another route has the same host and path_prefix (letter case aside)"));
        }
        let upstream = upstreams.iter().position(|u| u.name == *r.upstream.get_ref()).ok_or_else(|| {
            ctx.invalid(r.upstream.span(), format!("no [[upstream]] is named {:?}", r.upstream.get_ref()))
        })?;
        let organisation_segment = match &r.organisation_segment {
            None => None,
            Some(n) => Some(
                usize::try_from(*n.get_ref())
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .ok_or_else(|| ctx.invalid(n.span(), "organisation_segment counts path segments from 1"))?,
            ),
        };
        out.push(Route {
            name: r.name.get_ref().clone(),
            host,
            path_prefix,
            upstream,
            token_binding: r.token_binding,
            organisation_segment,
            identity_assertion: r.identity_assertion,
            path_parameters: r.path_parameters,
            cross_site: r.cross_site_requests,
            rules: crate::authz::rules(ctx, authorization, &r.rule, &mut activities)?,
        });
    }
    Ok(out)
}

/// A timeout that must not be zero: zero would close every connection at once (or, read as
/// "no limit", leave it unbounded, which is what these settings exist to prevent).
fn positive(ctx: &Ctx<'_>, d: &HumanDuration, what: &str) -> Result<Duration, ConfigError> {
    if d.0.is_zero() {
        return Err(ctx.global(format!("{what} must be longer than 0s")));
    }
    Ok(d.0)
}

/// Header names to remove, canonical: lower case, `_` read as `-` (as the gateway compares
/// them), each a valid field name with an optional trailing `*`.
fn request_headers(ctx: &Ctx<'_>, raw: &crate::raw::RawRequestHeaders) -> Result<RequestHeaders, ConfigError> {
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

/// A route prefix must already be in the canonical form the gateway matches requests in: an
/// absolute path of unreserved characters and sub-delimiters, no escapes, no `.`/`..` or empty
/// segments, no `;` parameters. Anything else could never match, or match something unexpected.
fn canonical_prefix(prefix: &str) -> Result<(), &'static str> {
    if !prefix.starts_with('/') {
        return Err("must start with /");
    }
    let allowed = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'/' | b'-'
                    | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'='
            )
    };
    if !prefix.bytes().all(allowed) {
        return Err(
            "may hold only letters, digits and - . _ ~ : @ ! $ & ' ( ) * + , = (no query, escape or ; parameter)",
        );
    }
    let inner = prefix.trim_end_matches('/');
    if inner.len() > 1 && inner[1..].split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err("must not have empty, . or .. segments");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid configuration with one route (`patient`, no rules), for tests to extend.
    pub(crate) const MINIMAL: &str = r#"
[[listener]]
name = "clinical"
listen = "127.0.0.1:8443"
[[listener.certificate]]
cert = "server.pem"
key = "server.key"

[client_auth]
trust_anchors = ["root.pem"]

[[upstream]]
name = "pds"
endpoints = ["http://127.0.0.1:9000"]

[[route]]
name = "patient"
path_prefix = "/Patient/"
upstream = "pds"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        validate(text, Some(Path::new("/etc/spinegate/spinegate.toml")), Path::new("/etc/spinegate"))
    }

    #[test]
    fn minimal_text_gets_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.admin.listen, "127.0.0.1:9901".parse().unwrap());
        assert_eq!(c.listeners[0].client_certificate, ClientCertificatePolicy::Require);
        assert_eq!(c.listeners[0].tls_versions, vec![TlsVersion::Tls13, TlsVersion::Tls12]);
        assert_eq!(c.listeners[0].alpn, vec![Alpn::H2, Alpn::Http11]);
        assert_eq!(c.listeners[0].certificates[0].cert, Path::new("/etc/spinegate/server.pem"));
        assert_eq!(c.client_auth.expiry_warning.as_secs(), 90 * 86_400);
        assert_eq!(c.client_auth.max_chain_length.get(), 4);
        assert_eq!(c.client_auth.identity.user_id, UserIdSource::SubjectCnPrefix { separator: '_' });
        assert_eq!(c.client_auth.identity.require_ou.as_deref(), Some("People"));
        assert_eq!(c.routes[0].path_prefix, "/Patient");
        assert_eq!(c.upstreams[0].endpoints[0].authority(), "127.0.0.1:9000");
    }

    #[test]
    fn route_prefixes_must_already_be_canonical() {
        for (prefix, why) in [
            ("/Patient/../admin", "empty, . or .. segments"),
            ("/Patient//x", "empty, . or .. segments"),
            ("/./Patient", "empty, . or .. segments"),
            ("/Patient%2Fx", "may hold only"),
            ("/Patient;x", "may hold only"),
            ("/Patient?x=1", "may hold only"),
            ("Patient", "must start with /"),
        ] {
            let text = MINIMAL.replace("path_prefix = \"/Patient/\"", &format!("path_prefix = {prefix:?}"));
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(why), "{prefix}: {err}");
        }
    }

    #[test]
    fn routes_differing_only_in_case_are_refused() {
        let text = format!("{MINIMAL}\n[[route]]\nname = \"lower\"\npath_prefix = \"/patient\"\nupstream = \"pds\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("letter case aside"), "{err}");
    }

    #[test]
    fn route_path_parameters_and_cross_site_default_to_refuse() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.routes[0].path_parameters, PathParameters::Refuse);
        assert_eq!(c.routes[0].cross_site, CrossSite::Refuse);
        let text = MINIMAL.replace(
            "upstream = \"pds\"\n",
            "upstream = \"pds\"\npath_parameters = \"allow\"\ncross_site_requests = \"allow\"\n",
        );
        let c = parse(&text).unwrap();
        assert_eq!((c.routes[0].path_parameters, c.routes[0].cross_site), (PathParameters::Allow, CrossSite::Allow));
    }

    #[test]
    fn removed_request_headers_are_canonical_names_or_prefixes() {
        let c = parse(&format!("{MINIMAL}\n[request_headers]\nremove = [\"X_Internal_*\", \"X-Debug\"]\n")).unwrap();
        assert_eq!(c.request_headers.remove, vec!["x-internal-*".to_owned(), "x-debug".to_owned()]);
        for bad in ["\"*\"", "\"a b\"", "\"host\"", "\"Transfer_Encoding\""] {
            assert!(parse(&format!("{MINIMAL}\n[request_headers]\nremove = [{bad}]\n")).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_field_is_refused_with_line_and_column() {
        let text = MINIMAL.replace("name = \"pds\"", "name = \"pds\"\nretries = 3");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("/etc/spinegate/spinegate.toml:"), "{err}");
        assert!(err.contains("retries"), "{err}");
        let line = text.lines().position(|l| l.starts_with("retries")).unwrap() + 1;
        assert!(err.contains(&format!(":{line}:1")), "{err}");
    }

    #[test]
    fn bad_duration_is_refused_at_its_place() {
        let text = MINIMAL.replace("name = \"pds\"", "name = \"pds\"\nconnect_timeout = \"soon\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("invalid duration \"soon\""), "{err}");
    }

    #[test]
    fn route_to_missing_upstream_points_at_the_name() {
        let text = MINIMAL.replace("upstream = \"pds\"", "upstream = \"pdss\"");
        let err = parse(&text).unwrap_err();
        let ConfigError::Invalid { location, message } = err else { panic!("{err}") };
        assert!(message.contains("pdss"));
        let line = text.lines().position(|l| l.contains("\"pdss\"")).unwrap() + 1;
        assert_eq!(location.line, line);
        assert_eq!(location.column, "upstream = ".len() + 1);
    }

    #[test]
    fn https_endpoint_without_tls_table_is_refused() {
        let text = MINIMAL.replace("http://127.0.0.1:9000", "https://pds.internal");
        assert!(parse(&text).unwrap_err().to_string().contains("[upstream.tls]"));
    }

    #[test]
    fn no_listener_is_refused() {
        let err = parse("[admin]\nlisten = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("no [[listener]]"), "{err}");
    }

    #[test]
    fn chain_length_below_two_is_refused() {
        let text =
            MINIMAL.replace("trust_anchors = [\"root.pem\"]", "trust_anchors = [\"root.pem\"]\nmax_chain_length = 1");
        assert!(parse(&text).unwrap_err().to_string().contains("between 2 and 8"));
    }

    #[test]
    fn revocation_policy_defaults_fail_closed_and_issuers_inherit_unset_keys() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.client_auth.revocation.sources, vec![Source::Ocsp, Source::Crl]);
        assert_eq!(c.client_auth.revocation.unknown, UnknownStatus::Refuse);

        let text = MINIMAL.replace(
            "trust_anchors = [\"root.pem\"]",
            "trust_anchors = [\"root.pem\"]\n[client_auth.revocation]\nsources = [\"crl\"]\nunknown = { serve_stale_for = \"4h\" }\n\
             [[client_auth.issuer]]\nname = \"ca\"\ncertificate = \"ca.pem\"\n[client_auth.issuer.revocation]\n\
             ocsp_nonce = \"send\"\ncrl_files = [\"ca.crl\"]\n",
        );
        let c = parse(&text).unwrap();
        let issuer = &c.client_auth.issuers[0].revocation;
        assert_eq!(issuer.sources, vec![Source::Crl], "inherited from [client_auth.revocation]");
        assert_eq!(issuer.unknown, UnknownStatus::ServeStaleFor(std::time::Duration::from_secs(4 * 3600)));
        assert_eq!(issuer.ocsp.nonce, NoncePolicy::Send);
        assert_eq!(issuer.crl_files, vec![Path::new("/etc/spinegate/ca.crl").to_path_buf()]);
    }

    #[test]
    fn crl_files_without_an_issuer_and_non_http_urls_are_refused() {
        let text = MINIMAL.replace(
            "trust_anchors = [\"root.pem\"]",
            "trust_anchors = [\"root.pem\"]\n[client_auth.revocation]\ncrl_files = [\"x.crl\"]",
        );
        assert!(parse(&text).unwrap_err().to_string().contains("belong under a [[client_auth.issuer]]"));
        let text = MINIMAL.replace(
            "trust_anchors = [\"root.pem\"]",
            "trust_anchors = [\"root.pem\"]\n[client_auth.revocation]\nocsp_responder = \"https://ocsp.example\"",
        );
        assert!(parse(&text).unwrap_err().to_string().contains("not an http:// URL"));
        let text = MINIMAL.replace(
            "trust_anchors = [\"root.pem\"]",
            "trust_anchors = [\"root.pem\"]\n[client_auth.revocation]\nsources = [\"ocsp\", \"ldap\"]",
        );
        assert!(parse(&text).unwrap_err().to_string().contains("unknown revocation source"));
    }

    #[test]
    fn token_issuers_refuse_hmac_none_and_plain_http_keys() {
        let issuer = |alg: &str, url: &str| {
            format!(
                "{MINIMAL}\n[[token_issuer]]\nname = \"ci\"\nissuer = \"https://ci.example\"\naudiences = [\"spinegate\"]\nalgorithms = [\"{alg}\"]\njwks_url = \"{url}\"\n"
            )
        };
        assert!(parse(&issuer("RS256", "https://ci.example/jwks")).is_ok());
        assert!(parse(&issuer("RS256", "http://127.0.0.1:9/jwks")).is_ok(), "loopback http for development");
        assert!(parse(&issuer("HS256", "https://ci.example/jwks")).unwrap_err().to_string().contains("not accepted"));
        assert!(parse(&issuer("none", "https://ci.example/jwks")).unwrap_err().to_string().contains("not accepted"));
        assert!(
            parse(&issuer("RS256", "http://ci.example/jwks")).unwrap_err().to_string().contains("must come over https")
        );
        let c = parse(&issuer("PS256", "https://ci.example/jwks")).unwrap();
        assert_eq!(c.token_issuers[0].options.keys, KeySource::Jwks("https://ci.example/jwks".into()));
        assert_eq!(c.routes[0].token_binding, TokenBinding::IfPresent);
    }

    #[test]
    fn endpoint_with_path_is_refused() {
        let text = MINIMAL.replace("http://127.0.0.1:9000", "http://127.0.0.1:9000/fhir");
        assert!(parse(&text).unwrap_err().to_string().contains("paths are not rewritten"));
    }

    #[test]
    fn http3_gets_defaults_and_refuses_what_quic_cannot_do() {
        let with = |table: &str| MINIMAL.replace("key = \"server.key\"\n", &format!("key = \"server.key\"\n{table}"));
        let c = parse(&with("[listener.http3]\n")).unwrap();
        let h3 = c.listeners[0].http3.as_ref().unwrap();
        assert_eq!((h3.max_concurrent_streams, h3.udp_receive_buffer, h3.alt_svc), (100, 4 << 20, true));
        assert_eq!(h3.transport_idle_timeout.as_secs(), 30);
        assert!(parse(MINIMAL).unwrap().listeners[0].http3.is_none(), "TCP only unless asked");

        let tls12 = with("[listener.http3]\n")
            .replace("listen = \"127.0.0.1:8443\"", "listen = \"127.0.0.1:8443\"\ntls_versions = [\"1.2\"]");
        assert!(parse(&tls12).unwrap_err().to_string().contains("needs TLS 1.3"));
        for (table, says) in [
            ("max_concurrent_streams = 0", "1 to 10000"),
            ("udp_receive_buffer = 1024", "64 KiB to 256 MiB"),
            ("transport_idle_timeout = \"0s\"", "1s to 1h"),
            ("max_connections = 0", "at least 1"),
            ("early_data = true", "unknown field"),
        ] {
            let err = parse(&with(&format!("[listener.http3]\n{table}\n"))).unwrap_err().to_string();
            assert!(err.contains(says), "{table}: {err}");
        }
    }
}
