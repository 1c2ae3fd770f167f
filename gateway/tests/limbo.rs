//! The x509-limbo corpus against the gateway's own client-certificate verifier. Every limbo case
//! whose verdict rests on path validation alone — trust anchors, untrusted intermediates, validity
//! at the case's time, basic constraints, path length, name constraints, EKU, signatures and key
//! sizes — runs through [`TrustStore::verify_with_usage`] and must reach limbo's verdict, or be
//! listed in `limbo-exceptions.toml` with the reason the gateway's behaviour is intended. Cases are
//! skipped, and counted by reason, only where they test something this verifier does not do:
//! matching a server's host name or IP (a client-certificate gateway never checks one), CRLs
//! (revocation is the `spinegate-revocation` snapshot, not path validation), certificate-policy
//! processing, caller-chosen signature algorithms, and features this file does not know. A case's
//! `key_usage` (a leaf key usage the caller demands) has no counterpart in the verifier; the cases
//! that set it are decided by their chains. The corpus is read from
//! `$SPINEGATE_TESTDATA/x509-limbo/limbo.json`, else from `../shared/testdata` beside the
//! workspace; without it the test says so and checks nothing.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use serde::Deserialize;
use spinegate::trust::{TrustMaterial, TrustStore};
use spinegate_config::{ClientAuth, EkuPolicy, IdentityRule, UserIdSource};
use spinegate_devpki::corpus::{self, Exceptions, Tally};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use webpki::KeyUsage;

type SigAlgs = &'static [&'static dyn SignatureVerificationAlgorithm];

/// Large enough for limbo's longest pool (100 intermediates); chains are never cut short by it.
const MAX_CHAIN_BYTES: NonZeroUsize = NonZeroUsize::new(1 << 20).unwrap();

/// Features whose cases run: each is a stricter or looser reading of path validation, and any
/// disagreement it causes must be listed as an exception.
const RUN_FEATURES: &[&str] = &[
    "denial-of-service",
    "max-chain-depth",
    "name-constraint-dn",
    "pedantic-public-suffix-wildcard",
    "pedantic-rfc5280",
    "pedantic-serial-number",
    "pedantic-webpki-eku",
    "pedantic-webpki-subscriber-key",
    "rfc5280-incompatible-with-webpki",
];

/// Certificate-policy processing, which webpki (and so the gateway) does not implement.
const POLICY_FEATURES: &[&str] = &["has-policy-constraints", "has-cert-policies", "no-cert-policies"];

/// SERVER cases expected to fail because of the peer name: the host name or IP a TLS client
/// would check, or the CABF rules on how a server certificate spells that name. Apart from the
/// name their chains are valid, so the verdict says nothing about path validation. Expected
/// successes are never skipped: a SUCCESS verdict implies the path validates, whatever the name.
const SERVER_NAME_FAILURES: &[IdMatch] = &[
    // CABF BR 7.1.4.3: a server certificate's subject CN must copy one of its SAN host names.
    IdMatch::Prefix("webpki::cn::"),
    // RFC 6125 host-name matching: plain mismatches and the wildcard rules.
    IdMatch::Prefix("webpki::san::mismatch-"),
    IdMatch::Prefix("webpki::san::wildcard-"),
    IdMatch::Prefix("webpki::san::public-suffix-"),
    IdMatch::Prefix("webpki::san::san-wildcard-only"),
    IdMatch::Exact("webpki::san::unicode-emoji-san"),
    // No SAN at all: nothing to match the host name against.
    IdMatch::Exact("webpki::san::no-san"),
    // Valid CA-as-leaf chain (see rfc5280::ca-as-leaf); only its SAN differs from the peer name.
    IdMatch::Exact("rfc5280::ca-as-leaf-wrong-san"),
    // An IP address written as a dNSName does not match the expected iPAddress peer name.
    IdMatch::Exact("rfc5280::san::ip-in-dns"),
];

#[derive(Deserialize)]
struct Limbo {
    version: u32,
    testcases: Vec<Testcase>,
}

#[derive(Deserialize)]
struct Testcase {
    id: String,
    #[serde(default)]
    features: Vec<String>,
    validation_kind: ValidationKind,
    trusted_certs: Vec<String>,
    untrusted_intermediates: Vec<String>,
    peer_certificate: String,
    validation_time: Option<String>,
    signature_algorithms: Vec<String>,
    extended_key_usage: Vec<String>,
    expected_result: Verdict,
    max_chain_depth: Option<usize>,
    #[serde(default)]
    crls: Vec<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
enum ValidationKind {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
enum Verdict {
    Success,
    Failure,
}

/// Why a case is not run; `label` is what the summary counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    ServerNameCheck,
    Crl,
    CertificatePolicies,
    SignatureAlgorithmConstraint,
    EkuNotExpressible,
    UnknownFeature,
}

enum IdMatch {
    Prefix(&'static str),
    Exact(&'static str),
}

/// What the verifier did with a case.
enum Got {
    Accepted,
    Refused(String),
}

impl Skip {
    fn label(self) -> &'static str {
        match self {
            Skip::ServerNameCheck => "server name check",
            Skip::Crl => "crl",
            Skip::CertificatePolicies => "certificate policies",
            Skip::SignatureAlgorithmConstraint => "signature algorithm constraint",
            Skip::EkuNotExpressible => "eku not expressible",
            Skip::UnknownFeature => "unknown feature",
        }
    }
}

impl IdMatch {
    fn matches(&self, id: &str) -> bool {
        match self {
            IdMatch::Prefix(prefix) => id.starts_with(prefix),
            IdMatch::Exact(exact) => id == *exact,
        }
    }
}

impl Verdict {
    fn of(got: &Got) -> Self {
        match got {
            Got::Accepted => Verdict::Success,
            Got::Refused(_) => Verdict::Failure,
        }
    }
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Accepted => f.write_str("accepted"),
            Got::Refused(why) => write!(f, "refused ({why})"),
        }
    }
}

#[test]
fn limbo_client_path_validation_cases_match_expectations() {
    let path = corpus::dir("x509-limbo").join("limbo.json");
    let Ok(json) = std::fs::read_to_string(&path) else {
        corpus::announce_missing(&path, "x509-limbo case");
        return;
    };
    let limbo: Limbo = serde_json::from_str(&json).expect("limbo.json follows limbo-schema.json");
    assert_eq!(limbo.version, 1, "limbo schema version");
    assert!(!limbo.testcases.is_empty(), "{} holds no test cases", path.display());
    let exceptions = Exceptions::parse("limbo-exceptions.toml", include_str!("limbo-exceptions.toml"));
    let sig_algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.all;

    let mut tally = Tally::default();
    let mut seen = BTreeSet::new();
    for case in &limbo.testcases {
        seen.insert(case.id.as_str());
        let excepted = exceptions.contains(&case.id);
        match evaluate(case, sig_algs) {
            Err(skip) => tally.skip(&case.id, skip.label(), excepted),
            Ok(got) => {
                let expected = case.expected_result;
                tally.record(&case.id, format_args!("{expected:?}"), &got, Verdict::of(&got) == expected, excepted);
            }
        }
    }
    tally.stale_unless_seen(&exceptions, &seen, "not in the corpus");
    for rule in SERVER_NAME_FAILURES {
        let (IdMatch::Prefix(pattern) | IdMatch::Exact(pattern)) = rule;
        if !seen.iter().any(|id| rule.matches(id)) {
            tally.stale.push(format!("server-name skip rule {pattern:?} matches no case"));
        }
    }
    tally.print_findings();
    println!("{}", tally.summary("x509-limbo"));
    tally.assert_clean("x509-limbo failures");
}

/// Runs one case through a trust store built from its anchors, or says why it is skipped.
fn evaluate(case: &Testcase, sig_algs: SigAlgs) -> Result<Got, Skip> {
    if let Some(skip) = skip_reason(case) {
        return Err(skip);
    }
    let usage = key_usage(case)?;
    let material = TrustMaterial { anchors: certificates(case, &case.trusted_certs), ..TrustMaterial::default() };
    let store = match TrustStore::build(&client_auth(case), material, sig_algs) {
        Ok(store) => store,
        // The gateway would not start with such an anchor, so no client could get in.
        Err(e) => return Ok(Got::Refused(format!("trust store: {e}"))),
    };
    let leaf = certificate(case, &case.peer_certificate);
    // limbo's untrusted intermediates are what a client would send after its certificate.
    let presented = certificates(case, &case.untrusted_intermediates);
    Ok(match store.verify_with_usage(&leaf, &presented, validation_time(case), usage) {
        Ok(_) => Got::Accepted,
        Err(failure) => Got::Refused(format!("{}: {failure}", failure.label())),
    })
}

fn skip_reason(case: &Testcase) -> Option<Skip> {
    let has = |set: &[&str]| case.features.iter().any(|f| set.contains(&f.as_str()));
    if has(&["has-crl"]) || !case.crls.is_empty() {
        return Some(Skip::Crl);
    }
    if has(POLICY_FEATURES) {
        return Some(Skip::CertificatePolicies);
    }
    // limbo: "consumers that don't understand a given feature should skip tests marked with it".
    if case.features.iter().any(|f| !RUN_FEATURES.contains(&f.as_str())) {
        return Some(Skip::UnknownFeature);
    }
    // The verifier's algorithms are the provider's, not the caller's.
    if !case.signature_algorithms.is_empty() {
        return Some(Skip::SignatureAlgorithmConstraint);
    }
    let name_failure = case.validation_kind == ValidationKind::Server
        && case.expected_result == Verdict::Failure
        && SERVER_NAME_FAILURES.iter().any(|rule| rule.matches(&case.id));
    name_failure.then_some(Skip::ServerNameCheck)
}

/// The EKU webpki demands of every certificate in the path that carries one. With no list, the
/// TLS role of the case decides, as in limbo's own webpki harness.
fn key_usage(case: &Testcase) -> Result<KeyUsage, Skip> {
    const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
    let oid: &'static [u8] = match case.extended_key_usage.as_slice() {
        [] => match case.validation_kind {
            ValidationKind::Server => SERVER_AUTH,
            ValidationKind::Client => CLIENT_AUTH,
        },
        [one] => match one.as_str() {
            "serverAuth" => SERVER_AUTH,
            "clientAuth" => CLIENT_AUTH,
            "codeSigning" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03],
            "emailProtection" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04],
            "timeStamping" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08],
            "OCSPSigning" => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09],
            "anyExtendedKeyUsage" => &[0x55, 0x1d, 0x25, 0x00],
            _ => return Err(Skip::EkuNotExpressible),
        },
        // webpki checks one purpose per verification.
        _ => return Err(Skip::EkuNotExpressible),
    };
    Ok(KeyUsage::required_if_present(oid))
}

fn client_auth(case: &Testcase) -> ClientAuth {
    // limbo's max_chain_depth counts intermediates ("depth 0: there may not be any"); the
    // gateway's max_chain_length also counts the leaf and the anchor. Without a depth, a cap no
    // path can reach, so webpki's own limits decide.
    let intermediates = case.max_chain_depth.unwrap_or(case.untrusted_intermediates.len());
    ClientAuth {
        trust_anchors: Vec::new(),
        intermediates: Vec::new(),
        max_chain_length: NonZeroUsize::MIN.saturating_add(intermediates + 1),
        max_chain_bytes: MAX_CHAIN_BYTES,
        client_auth_eku: EkuPolicy::RequireIfPresent,
        revocation_depth: spinegate_config::RevocationDepth::Leaf,
        expiry_warning: Duration::from_secs(90 * 24 * 60 * 60),
        // Identity extraction is not part of path validation; verify_with_usage never reads it.
        identity: IdentityRule {
            user_id: UserIdSource::SubjectCnPrefix { separator: '_' },
            require_ou: None,
            require_o: None,
        },
        revocation: spinegate_config::RevocationPolicy::default(),
        issuers: Vec::new(),
    }
}

fn validation_time(case: &Testcase) -> UnixTime {
    let Some(text) = &case.validation_time else {
        // limbo: no validation_time means now; its generated certificates run from 1970 to 2969.
        return UnixTime::now();
    };
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{}: validation_time {text:?} is not RFC 3339: {e}", case.id));
    // Whole seconds, floored: X.509 times have second resolution, and limbo's fractional-time
    // cases expect the floor.
    let secs = u64::try_from(at.unix_timestamp())
        .unwrap_or_else(|_| panic!("{}: validation_time {text:?} is before 1970", case.id));
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

fn certificate(case: &Testcase, pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap_or_else(|e| panic!("{}: corpus certificate is not PEM: {e}", case.id))
}

fn certificates(case: &Testcase, pems: &[String]) -> Vec<CertificateDer<'static>> {
    pems.iter().map(|pem| certificate(case, pem)).collect()
}
