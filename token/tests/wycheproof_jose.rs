//! The Wycheproof JOSE corpus against the gateway's own JWS and JWK code. Every JSON Web Signature
//! vector (`json_web_signature_test.json`) and every JSON Web Key vector (`json_web_key_test.json`)
//! runs through [`KeySet::parse`], [`decode`] and [`Unverified::verify`] with every algorithm the
//! gateway can be configured with ([`Alg::ALL`]); a vector is accepted iff all three succeed. Each
//! must reach Wycheproof's verdict, or be listed in `wycheproof-jose-exceptions.toml` with the
//! reason the gateway refuses it. An exception may only excuse a valid vector that is refused (fail
//! closed); an invalid vector that is accepted (fail open) or a panic fails the test whatever the
//! file says. The verification keys are the group's `public` JWK, Wycheproof's own public form of
//! the signing key; symmetric keys have none and are given as they are, and none of them may ever
//! become usable. The raw signature files (ECDSA P-256 and P-384 in P1363 form, RSA PKCS #1 v1.5
//! and PSS, Ed25519) sign arbitrary messages, not a JWS signing input, and `Unverified` only
//! verifies a signing input, so their vectors are counted as skipped. The corpus is read from
//! `$SPINEGATE_TESTDATA/wycheproof-jose/`, else from `../shared/testdata` beside the workspace;
//! without it the test says so and checks nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};
use spinegate_devpki::corpus::{self, Exceptions, Tally, guarded};
use spinegate_token::jose::{Alg, JwkError, KeySet, Limits, Unverified, decode};

/// The vector files run through the gateway, by the name their ids carry.
const VECTOR_FILES: [&str; 2] = ["json_web_signature_test", "json_web_key_test"];

/// Signature vectors over arbitrary messages: no compact JWS can carry them.
const RAW_FILES: [&str; 5] = [
    "ecdsa_secp256r1_sha256_p1363_test",
    "ecdsa_secp384r1_sha384_p1363_test",
    "rsa_signature_2048_sha256_test",
    "rsa_pss_2048_sha256_mgf1_32_test",
    "ed25519_test",
];

const RAW_SKIP: &str = "raw signature vectors: no JWS signing input";
const ACCEPTABLE_SKIP: &str = "acceptable: either verdict conforms";

/// Members of an RSA or EC JWK that belong to the private key (RFC 7518 sections 6.2.2, 6.3.2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Suite {
    number_of_tests: usize,
    test_groups: Vec<Group>,
}

/// A key (JWS file) or a JWK Set (JWK file) and the tokens to verify with it.
#[derive(Deserialize)]
struct Group {
    comment: String,
    private: Value,
    public: Option<Value>,
    tests: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    tc_id: u32,
    comment: String,
    jws: String,
    result: Expected,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expected {
    Valid,
    Invalid,
    Acceptable,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSuite {
    test_groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
struct RawGroup {
    tests: Vec<IgnoredAny>,
}

/// What the gateway did with a vector.
enum Got {
    Accepted,
    Refused { label: &'static str, why: String },
    Panicked(String),
}

/// The run so far: outcomes, the ids of the vectors run, and the exceptions they are held to.
#[derive(Default)]
struct Run {
    exceptions: Exceptions,
    tally: Tally,
    /// Agreeing refusals of invalid vectors, by the gateway's reason: which check did the work.
    refused_by: BTreeMap<&'static str, usize>,
    seen: BTreeSet<String>,
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Accepted => f.write_str("accepted"),
            Got::Refused { label, why } => write!(f, "refused ({label}: {why})"),
            Got::Panicked(message) => write!(f, "PANIC ({message})"),
        }
    }
}

#[test]
fn wycheproof_jws_and_jwk_vectors_match_expectations() {
    let dir = corpus::dir("wycheproof-jose");
    if !dir.is_dir() {
        corpus::announce_missing(&dir, "Wycheproof JOSE vector");
        return;
    }
    let exceptions =
        Exceptions::parse("wycheproof-jose-exceptions.toml", include_str!("wycheproof-jose-exceptions.toml"));
    let mut run = Run { exceptions, ..Run::default() };
    for file in VECTOR_FILES {
        let suite: Suite = read(&dir, file).unwrap_or_else(|| panic!("{file}.json is missing from {}", dir.display()));
        let total: usize = suite.test_groups.iter().map(|g| g.tests.len()).sum();
        assert_eq!(total, suite.number_of_tests, "{file}: numberOfTests");
        for group in &suite.test_groups {
            run.group(file, group);
        }
    }
    for file in RAW_FILES {
        match read::<RawSuite>(&dir, file) {
            Some(raw) => run.tally.count_skipped(RAW_SKIP, raw.test_groups.iter().map(|g| g.tests.len()).sum()),
            None => println!("note: {file}.json not found; its vectors are not counted"),
        }
    }
    run.tally.stale_unless_seen(&run.exceptions, &run.seen, "not in the corpus");
    run.report();
    run.tally.assert_clean("Wycheproof JOSE failures");
}

impl Run {
    /// Builds the group's key set once and runs its vectors against it.
    fn group(&mut self, file: &str, group: &Group) {
        let jwks = verification_keys(group);
        symmetric_keys_stay_unusable(file, group, &jwks, &mut self.tally);
        let bytes = serde_json::to_vec(&jwks).expect("a serde_json::Value always serialises");
        let keys = guarded(|| KeySet::parse(&bytes, &Alg::ALL));
        for vector in &group.tests {
            let id = format!("{file}:tcId {}", vector.tc_id);
            let got = match &keys {
                Err(message) => Got::Panicked(format!("KeySet::parse: {message}")),
                Ok(keys) => guarded(|| evaluate(keys, &vector.jws)).unwrap_or_else(Got::Panicked),
            };
            let what = format!("{id} ({}/{})", group.comment, vector.comment);
            let excepted = self.exceptions.contains(&id);
            self.record(&what, vector.result, &got, excepted);
            self.seen.insert(id);
        }
    }

    /// Counts one vector. A panic, and an invalid vector accepted (fail open), are failures
    /// whatever the exceptions say; only a valid vector refused can be excused.
    fn record(&mut self, what: &str, expected: Expected, got: &Got, excepted: bool) {
        let tally = &mut self.tally;
        match (expected, got) {
            (_, Got::Panicked(_)) => tally.failures.push(format!("PANIC {what}: {got}")),
            (Expected::Acceptable, _) => tally.skip(what, ACCEPTABLE_SKIP, excepted),
            (Expected::Invalid, Got::Accepted) => {
                let note = if excepted { "; an exception cannot excuse accepting it" } else { "" };
                tally.failures.push(format!("FAIL-OPEN {what}: invalid vector accepted{note}"));
            }
            (Expected::Invalid, Got::Refused { label, .. }) => {
                if !excepted {
                    *self.refused_by.entry(label).or_default() += 1;
                }
                tally.record(what, "invalid", got, true, excepted);
            }
            (Expected::Valid, _) => tally.record(what, "valid", got, matches!(got, Got::Accepted), excepted),
        }
    }

    fn report(&self) {
        self.tally.print_findings();
        println!("wycheproof-jose: invalid vectors refused by {}", corpus::counts(&self.refused_by));
        println!("{}", self.tally.summary("wycheproof-jose"));
    }
}

/// The JWK Set an issuer would publish for the group: Wycheproof's public form of the key where the
/// group has one, else its `private` member less the private-key members. A symmetric key is kept
/// as given: its secret is all there is, and the key set must leave it out.
fn verification_keys(group: &Group) -> Value {
    if let Some(public) = &group.public {
        return as_set(public);
    }
    let mut jwks = as_set(&group.private);
    if let Some(keys) = jwks["keys"].as_array_mut() {
        for key in keys.iter_mut().filter(|k| k["kty"] != "oct") {
            if let Some(members) = key.as_object_mut() {
                members.retain(|name, _| !PRIVATE_MEMBERS.contains(&name.as_str()));
            }
        }
    }
    jwks
}

/// A JWK Set as given, or a one-key set around a lone JWK.
fn as_set(jwk_or_set: &Value) -> Value {
    if jwk_or_set.get("keys").is_some() { jwk_or_set.clone() } else { json!({ "keys": [jwk_or_set] }) }
}

/// A symmetric key would let anyone who can read the issuer's key set mint tokens: each must be
/// left out of the key set on its own, whatever its `alg` and `use` say.
fn symmetric_keys_stay_unusable(file: &str, group: &Group, jwks: &Value, tally: &mut Tally) {
    let keys = jwks["keys"].as_array().map(Vec::as_slice).unwrap_or_default();
    for key in keys.iter().filter(|k| k["kty"] == "oct") {
        let alone = serde_json::to_vec(&json!({ "keys": [key] })).expect("a serde_json::Value always serialises");
        match guarded(|| KeySet::parse(&alone, &Alg::ALL)) {
            Ok(Ok(set)) if set.is_empty() => {}
            Ok(Ok(set)) => tally
                .failures
                .push(format!("FAIL-OPEN {file} group {:?}: a symmetric key is usable: {set:?}", group.comment)),
            Ok(Err(e)) => {
                tally.failures.push(format!("{file} group {:?}: a one-key set does not parse: {e}", group.comment))
            }
            Err(message) => {
                tally.failures.push(format!("PANIC {file} group {:?}: KeySet::parse: {message}", group.comment))
            }
        }
    }
}

/// The gateway's verdict on one compact JWS: the key set must parse, the token decode and verify.
fn evaluate(keys: &Result<KeySet, JwkError>, jws: &str) -> Got {
    let keys = match keys {
        Ok(keys) => keys,
        // The gateway keeps no keys from a key set that does not parse: every token is refused.
        Err(e) => return Got::Refused { label: "jwks_malformed", why: e.to_string() },
    };
    match decode(jws, &Alg::ALL, Limits::default()).and_then(|token: Unverified<'_>| token.verify(keys)) {
        Ok(_payload) => Got::Accepted,
        Err(e) => Got::Refused { label: e.label(), why: e.to_string() },
    }
}

/// One corpus file, or `None` if it is absent. A file that is present but does not parse fails.
fn read<T: DeserializeOwned>(dir: &Path, name: &str) -> Option<T> {
    let path = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}
