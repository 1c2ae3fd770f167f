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
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};
use spinegate::auth::token::jose::{Alg, JwkError, KeySet, Limits, Unverified, decode};

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

/// One `[[exception]]` of `wycheproof-jose-exceptions.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionsFile {
    #[serde(default)]
    exception: Vec<Exception>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Exception {
    id: String,
    reason: String,
}

#[derive(Default)]
struct Tally {
    pass: usize,
    /// Agreeing refusals of invalid vectors, by the gateway's reason: which check did the work.
    refused_by: BTreeMap<&'static str, usize>,
    divergent: Vec<String>,
    skipped: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
    stale: Vec<String>,
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
    let dir = corpus_dir();
    if !dir.is_dir() {
        eprintln!("SKIPPED: corpus not found at {}; no Wycheproof JOSE vector was checked", dir.display());
        return;
    }
    let exceptions = exceptions();
    let mut tally = Tally::default();
    let mut seen = BTreeSet::new();
    for file in VECTOR_FILES {
        let suite: Suite = read(&dir, file).unwrap_or_else(|| panic!("{file}.json is missing from {}", dir.display()));
        let total: usize = suite.test_groups.iter().map(|g| g.tests.len()).sum();
        assert_eq!(total, suite.number_of_tests, "{file}: numberOfTests");
        for group in &suite.test_groups {
            run_group(file, group, &exceptions, &mut tally, &mut seen);
        }
    }
    for file in RAW_FILES {
        match read::<RawSuite>(&dir, file) {
            Some(raw) => {
                *tally.skipped.entry(RAW_SKIP).or_default() +=
                    raw.test_groups.iter().map(|g| g.tests.len()).sum::<usize>()
            }
            None => println!("note: {file}.json not found; its vectors are not counted"),
        }
    }
    for id in exceptions.keys().filter(|id| !seen.contains(id.as_str())) {
        tally.stale.push(format!("{id}: listed, but not in the corpus"));
    }
    tally.report();
    assert!(
        tally.failures.is_empty() && tally.stale.is_empty(),
        "{} unexplained Wycheproof JOSE failures and {} stale exceptions (listed above)",
        tally.failures.len(),
        tally.stale.len()
    );
}

/// Builds the group's key set once and runs its vectors against it.
fn run_group(
    file: &str,
    group: &Group,
    exceptions: &BTreeMap<String, String>,
    tally: &mut Tally,
    seen: &mut BTreeSet<String>,
) {
    let jwks = verification_keys(group);
    symmetric_keys_stay_unusable(file, group, &jwks, tally);
    let bytes = serde_json::to_vec(&jwks).expect("a serde_json::Value always serialises");
    let keys = guarded(|| KeySet::parse(&bytes, &Alg::ALL));
    for vector in &group.tests {
        let id = format!("{file}:tcId {}", vector.tc_id);
        let got = match &keys {
            Err(message) => Got::Panicked(format!("KeySet::parse: {message}")),
            Ok(keys) => guarded(|| evaluate(keys, &vector.jws)).unwrap_or_else(Got::Panicked),
        };
        let what = format!("{id} ({}/{})", group.comment, vector.comment);
        tally.record(&what, vector.result, &got, exceptions.contains_key(&id));
        seen.insert(id);
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

impl Tally {
    fn record(&mut self, what: &str, expected: Expected, got: &Got, excepted: bool) {
        match (expected, got) {
            (_, Got::Panicked(_)) => self.failures.push(format!("PANIC {what}: {got}")),
            (Expected::Acceptable, _) => {
                *self.skipped.entry(ACCEPTABLE_SKIP).or_default() += 1;
                if excepted {
                    self.stale.push(format!("{what}: listed, but skipped ({ACCEPTABLE_SKIP})"));
                }
            }
            (Expected::Invalid, Got::Accepted) => {
                let note = if excepted { "; an exception cannot excuse accepting it" } else { "" };
                self.failures.push(format!("FAIL-OPEN {what}: invalid vector accepted{note}"));
            }
            (Expected::Valid, Got::Accepted) | (Expected::Invalid, Got::Refused { .. }) if excepted => {
                self.stale.push(format!("{what}: listed, but now {got} as expected"));
            }
            (Expected::Valid, Got::Accepted) => self.pass += 1,
            (Expected::Invalid, Got::Refused { label, .. }) => {
                self.pass += 1;
                *self.refused_by.entry(label).or_default() += 1;
            }
            (Expected::Valid, Got::Refused { .. }) if excepted => {
                self.divergent.push(format!("{what}: expected valid, got {got}"));
            }
            (Expected::Valid, Got::Refused { .. }) => {
                self.failures.push(format!("FAIL {what}: expected valid, got {got}"))
            }
        }
    }

    fn report(&self) {
        for line in &self.divergent {
            println!("expected divergence: {line}");
        }
        for line in &self.failures {
            println!("{line}");
        }
        for line in &self.stale {
            println!("STALE exception: {line}");
        }
        let counts = |map: &BTreeMap<&str, usize>| {
            let parts: Vec<String> = map.iter().map(|(label, n)| format!("{label}: {n}")).collect();
            if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
        };
        println!("wycheproof-jose: invalid vectors refused by {}", counts(&self.refused_by));
        println!(
            "wycheproof-jose: {} pass, {} fail, {} expected-divergence (exceptions), {} skipped ({})",
            self.pass,
            self.failures.len(),
            self.divergent.len(),
            self.skipped.values().sum::<usize>(),
            counts(&self.skipped)
        );
    }
}

/// Runs `f`, turning a panic into its message: a panic on a corpus input is a finding to report
/// with the vector's id, not a reason to stop checking the others. Nothing `f` borrows is used
/// again after a panic except to read it.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned())
    })
}

/// One corpus file, or `None` if it is absent. A file that is present but does not parse fails.
fn read<T: DeserializeOwned>(dir: &Path, name: &str) -> Option<T> {
    let path = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn corpus_dir() -> PathBuf {
    let testdata = match std::env::var_os("SPINEGATE_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        // The workspace root is this crate's parent; the corpora sit beside the workspace.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("testdata"),
    };
    testdata.join("wycheproof-jose")
}

/// The justified exceptions, by id. A malformed file, a blank reason or a repeated id fails the test.
fn exceptions() -> BTreeMap<String, String> {
    let mut by_id = BTreeMap::new();
    let file: ExceptionsFile = toml::from_str(include_str!("wycheproof-jose-exceptions.toml"))
        .unwrap_or_else(|e| panic!("wycheproof-jose-exceptions.toml: {e}"));
    for Exception { id, reason } in file.exception {
        assert!(!reason.trim().is_empty(), "wycheproof-jose-exceptions.toml: {id} has no reason");
        assert!(by_id.insert(id.clone(), reason).is_none(), "wycheproof-jose-exceptions.toml: {id} is listed twice");
    }
    by_id
}
