//! JOSE, the parts a token verifier needs and nothing more: strict base64url, JSON Web Keys
//! (RSA, EC P-256/P-384, Ed25519 public keys; symmetric keys are never used), and compact JWS
//! verification in which the key comes from the issuer's key set and the algorithm from the
//! issuer's allow-list — never from the token alone.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};

use crate::json::{Json, parse_strict};

/// base64url without padding, refusing padding, stray characters and non-canonical trailing
/// bits (RFC 7515 §2). SIMD-accelerated: every token's payload is decoded on a cache miss.
const B64: base64_simd::Base64 = base64_simd::URL_SAFE_NO_PAD;

/// Strict base64url decoding.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    B64.decode_to_vec(s).ok()
}

/// base64url encoding without padding.
pub fn b64_encode(bytes: &[u8]) -> String {
    B64.encode_to_string(bytes)
}

/// A JWS signature algorithm the gateway can verify. HMAC and `none` are absent by design.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// Every algorithm, for parsing.
    pub const ALL: [Alg; 9] =
        [Alg::Rs256, Alg::Rs384, Alg::Rs512, Alg::Ps256, Alg::Ps384, Alg::Ps512, Alg::Es256, Alg::Es384, Alg::EdDsa];

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// By JOSE name.
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Alg::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            Alg::EdDsa => &signature::ED25519,
        }
    }

    fn fits(self, kind: KeyKind) -> bool {
        matches!(
            (self, kind),
            (Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512, KeyKind::Rsa)
                | (Alg::Es256, KeyKind::P256)
                | (Alg::Es384, KeyKind::P384)
                | (Alg::EdDsa, KeyKind::Ed25519)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// One usable verification key.
pub struct Jwk {
    kid: Option<String>,
    /// The key parsed once per algorithm it may verify.
    parsed: Vec<(Alg, ParsedPublicKey)>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("algs", &self.parsed.iter().map(|(a, _)| *a).collect::<Vec<_>>())
            .finish()
    }
}

impl Jwk {
    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn key_for(&self, alg: Alg) -> Option<&ParsedPublicKey> {
        self.parsed.iter().find(|(a, _)| *a == alg).map(|(_, k)| k)
    }
}

/// Why a key or key set is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// Not a JWK Set document.
    #[error("not a JWK Set: {0}")]
    Malformed(String),
}

/// An issuer's keys. Keys that cannot verify signatures (symmetric, encryption-only, too weak,
/// malformed, for algorithms not allowed) are left out and reported; a `kid` that appears on more
/// than one usable key makes that `kid` ambiguous, and tokens naming it are refused.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<Jwk>>,
    ambiguous_kids: Vec<String>,
    /// Keys left out, with why: for the operator's log.
    pub skipped: Vec<String>,
}

/// The result of choosing a key for a token.
#[derive(Debug)]
pub enum KeyChoice<'a> {
    /// Exactly one key fits.
    Found(&'a Jwk),
    /// No key has this `kid` (or none fits the algorithm).
    Unknown,
    /// Several keys fit and the token does not say which.
    Ambiguous,
}

impl KeySet {
    /// Parses a JWK Set, keeping keys usable for one of `allowed` algorithms.
    pub fn parse(json: &[u8], allowed: &[Alg]) -> Result<Self, JwkError> {
        let doc = parse_strict(json).map_err(JwkError::Malformed)?;
        let keys =
            doc.get("keys").and_then(Json::as_array).ok_or_else(|| JwkError::Malformed("no \"keys\" array".into()))?;
        let mut set = KeySet::default();
        let mut kid_counts: HashMap<String, usize> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            match parse_key(key, allowed) {
                Ok(jwk) => {
                    if let Some(kid) = &jwk.kid {
                        *kid_counts.entry(kid.clone()).or_default() += 1;
                    }
                    set.keys.push(Arc::new(jwk));
                }
                Err(why) => set.skipped.push(format!("key {i}: {why}")),
            }
        }
        set.ambiguous_kids = kid_counts.into_iter().filter(|(_, n)| *n > 1).map(|(k, _)| k).collect();
        Ok(set)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no usable keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Chooses the key for a token with `kid` signed with `alg`.
    pub fn choose(&self, kid: Option<&str>, alg: Alg) -> KeyChoice<'_> {
        if let Some(kid) = kid
            && self.ambiguous_kids.iter().any(|k| k == kid)
        {
            return KeyChoice::Ambiguous;
        }
        let mut fitting =
            self.keys.iter().filter(|k| k.key_for(alg).is_some()).filter(|k| kid.is_none() || k.kid.as_deref() == kid);
        match (fitting.next(), fitting.next()) {
            (Some(k), None) => KeyChoice::Found(k),
            (None, _) => KeyChoice::Unknown,
            (Some(_), Some(_)) => KeyChoice::Ambiguous,
        }
    }
}

fn parse_key(key: &Json<'_>, allowed: &[Alg]) -> Result<Jwk, String> {
    let field = |name: &str| key.get(name).and_then(Json::as_str);
    let bytes = |name: &str| field(name).and_then(b64_decode).ok_or_else(|| format!("missing or bad \"{name}\""));
    if let Some(usage) = key.get("use")
        && usage.as_str() != Some("sig")
    {
        return Err("\"use\" is not \"sig\"".into());
    }
    if let Some(ops) = key.get("key_ops") {
        let verifies = ops.as_array().is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verifies {
            return Err("\"key_ops\" lacks \"verify\"".into());
        }
    }
    let declared = match key.get("alg") {
        None => None,
        Some(a) => Some(a.as_str().and_then(Alg::from_name).ok_or_else(|| format!("unsupported \"alg\" {a:?}"))?),
    };
    let (kind, public): (KeyKind, Vec<u8>) = match field("kty") {
        Some("RSA") => {
            let n = strip_zeros(bytes("n")?);
            let e = strip_zeros(bytes("e")?);
            if n.len() * 8 < 2048 || n[0] == 0 {
                return Err(format!("RSA modulus of {} bits is under 2048", n.len() * 8));
            }
            if e.len() > 4 || e == [1] || e.last().is_some_and(|b| b % 2 == 0) {
                return Err("RSA public exponent is not an odd value above 1".into());
            }
            if crate::weak_key::rsa_modulus_has_roca_fingerprint(&n) {
                return Err("RSA key has the ROCA fingerprint (CVE-2017-15361): its private key is recoverable".into());
            }
            (KeyKind::Rsa, rsa_public_key_der(&n, &e))
        }
        Some("EC") => {
            let (kind, len) = match field("crv") {
                Some("P-256") => (KeyKind::P256, 32),
                Some("P-384") => (KeyKind::P384, 48),
                other => return Err(format!("unsupported curve {other:?}")),
            };
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != len || y.len() != len {
                return Err("EC coordinates have the wrong length".into());
            }
            let mut point = vec![0x04];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, point)
        }
        Some("OKP") if field("crv") == Some("Ed25519") => {
            let x = bytes("x")?;
            if x.len() != 32 {
                return Err("Ed25519 key is not 32 bytes".into());
            }
            (KeyKind::Ed25519, x)
        }
        Some("oct") => return Err("symmetric keys are never used".into()),
        other => return Err(format!("unsupported key type {other:?}")),
    };
    let mut parsed = Vec::new();
    for alg in allowed.iter().copied().filter(|a| a.fits(kind)) {
        if declared.is_some_and(|d| d != alg) {
            continue;
        }
        // Parsing validates the key (point on the curve, RSA structure).
        let key = ParsedPublicKey::new(alg.verification(), &public).map_err(|e| format!("key rejected: {e}"))?;
        parsed.push((alg, key));
    }
    if parsed.is_empty() {
        return Err(match declared {
            Some(a) if !a.fits(kind) => format!("\"alg\" {} does not fit the key type", a.name()),
            _ => "no allowed algorithm fits the key".into(),
        });
    }
    Ok(Jwk { kid: field("kid").map(str::to_owned), parsed })
}

fn strip_zeros(mut b: Vec<u8>) -> Vec<u8> {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b.drain(..start);
    if b.is_empty() {
        b.push(0);
    }
    b
}

/// `RSAPublicKey` DER (RFC 8017 A.1.1) from the big-endian modulus and exponent.
pub fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let int = |v: &[u8]| {
        let mut body = Vec::with_capacity(v.len() + 1);
        if v[0] & 0x80 != 0 {
            body.push(0);
        }
        body.extend_from_slice(v);
        tlv(0x02, &body)
    };
    let mut seq = int(n);
    seq.extend(int(e));
    tlv(0x30, &seq)
}

/// A DER tag-length-value with a definite length (short or long form).
pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if body.len() < 0x80 {
        out.push(body.len() as u8);
    } else {
        let len = body.len().to_be_bytes();
        let skip = len.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// Limits checked before any decoding work.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bytes of the whole compact token.
    pub max_token_bytes: usize,
    /// Most bytes of the encoded header.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_token_bytes: 16 * 1024, max_header_bytes: 1024 }
    }
}

/// Why a JWS is refused. Every variant is `invalid_token` to the client; the label is for logs
/// and metrics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Longer than allowed.
    #[error("token or header too large")]
    TooLarge,
    /// Not three base64url parts, or a part does not decode.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header is not a JSON object, or has duplicate members.
    #[error("malformed header: {0}")]
    Header(String),
    /// `alg` is missing, `none`, HMAC, unknown, or not allowed for this issuer.
    #[error("algorithm {0:?} is not allowed")]
    Algorithm(String),
    /// The header tries to supply its own key (`jku`, `x5u`, `jwk`, `x5c`) or asks for
    /// unencoded payloads.
    #[error("header member {0:?} is refused")]
    ForbiddenHeader(&'static str),
    /// `crit` names extensions (none are understood).
    #[error("critical header extensions are not understood")]
    Critical,
    /// No key has this `kid`.
    #[error("no key for kid {0:?}")]
    UnknownKey(Option<String>),
    /// The `kid` is on several keys, or none is given and several keys fit.
    #[error("the key is ambiguous")]
    AmbiguousKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    Signature,
    /// `typ` names another kind of token (a logout token offered as an access token …).
    #[error("token type {0:?} is not accepted here")]
    Type(String),
}

impl JwsError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            JwsError::TooLarge => "too_large",
            JwsError::Malformed(_) => "malformed",
            JwsError::Header(_) => "bad_header",
            JwsError::Algorithm(_) => "algorithm",
            JwsError::ForbiddenHeader(_) => "forbidden_header",
            JwsError::Critical => "critical",
            JwsError::UnknownKey(_) => "unknown_key",
            JwsError::AmbiguousKey => "ambiguous_key",
            JwsError::Signature => "bad_signature",
            JwsError::Type(_) => "wrong_type",
        }
    }
}

/// What a token is used for, which its `typ` header must not contradict (RFC 8725 §3.11: explicit
/// typing keeps one kind of JWT from being accepted as another). `typ` is compared without case
/// and without an `application/` prefix; a token without `typ` passes (Care Identity sends
/// `JWT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenUse {
    /// A bearer token for requests: `JWT` or `at+jwt` (RFC 9068).
    Access,
    /// An OpenID Connect back-channel logout token: `JWT` or `logout+jwt`.
    Logout,
}

impl TokenUse {
    /// Refuses a `typ` that names another use.
    pub fn check(self, typ: Option<&str>) -> Result<(), JwsError> {
        let Some(typ) = typ else { return Ok(()) };
        let lower = typ.to_ascii_lowercase();
        let bare = lower.strip_prefix("application/").unwrap_or(&lower);
        let fits = match self {
            TokenUse::Access => matches!(bare, "jwt" | "at+jwt"),
            TokenUse::Logout => matches!(bare, "jwt" | "logout+jwt"),
        };
        if fits { Ok(()) } else { Err(JwsError::Type(typ.to_owned())) }
    }
}

/// A compact JWS whose header passed the checks, not yet verified.
#[derive(Debug)]
pub struct Unverified<'a> {
    /// The algorithm (allowed for the issuer).
    pub alg: Alg,
    /// The key id, if the header names one.
    pub kid: Option<String>,
    /// The `typ` header, if any.
    pub typ: Option<String>,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
}

/// The three parts of a compact JWS, found by the first two dots. A further dot (a JWE has five
/// parts) is left in the signature, whose strict base64url decoding refuses it.
pub fn split_compact(token: &str) -> Result<(&str, &str, &str), JwsError> {
    let (header, rest) = token.split_once('.').ok_or(JwsError::Malformed("not three parts"))?;
    let (payload, signature) = rest.split_once('.').ok_or(JwsError::Malformed("not three parts"))?;
    Ok((header, payload, signature))
}

/// Splits and checks a compact JWS: sizes first, then header rules; `allowed` is the issuer's
/// algorithm list.
pub fn decode<'a>(token: &'a str, allowed: &[Alg], limits: Limits) -> Result<Unverified<'a>, JwsError> {
    if token.len() > limits.max_token_bytes {
        return Err(JwsError::TooLarge);
    }
    let (header_b64, payload_b64, signature_b64) = split_compact(token)?;
    if header_b64.len() > limits.max_header_bytes {
        return Err(JwsError::TooLarge);
    }
    let header_bytes = b64_decode(header_b64).ok_or(JwsError::Malformed("header is not base64url"))?;
    let header = parse_strict(&header_bytes).map_err(JwsError::Header)?;
    let header = header.as_object().ok_or_else(|| JwsError::Header("not an object".into()))?;
    for forbidden in ["jku", "x5u", "jwk", "x5c", "b64"] {
        if header.contains_key(forbidden) {
            return Err(JwsError::ForbiddenHeader(forbidden));
        }
    }
    if header.contains_key("crit") {
        return Err(JwsError::Critical);
    }
    let alg_name = header.get("alg").and_then(Json::as_str).ok_or_else(|| JwsError::Algorithm("missing".into()))?;
    let alg = Alg::from_name(alg_name)
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| JwsError::Algorithm(alg_name.to_owned()))?;
    let kid = match header.get("kid") {
        None => None,
        Some(Json::String(k)) => Some(k.to_string()),
        Some(_) => return Err(JwsError::Header("kid is not a string".into())),
    };
    let typ = header.get("typ").and_then(Json::as_str).map(str::to_owned);
    if signature_b64.is_empty() {
        return Err(JwsError::Malformed("no signature"));
    }
    let signature = b64_decode(signature_b64).ok_or(if signature_b64.contains('.') {
        JwsError::Malformed("not three parts")
    } else {
        JwsError::Malformed("signature is not base64url")
    })?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    Ok(Unverified { alg, kid, typ, signing_input, payload_b64, signature })
}

impl Unverified<'_> {
    /// Verifies the signature with the key `keys` choose for it, and returns the payload.
    pub fn verify(&self, keys: &KeySet) -> Result<Vec<u8>, JwsError> {
        self.check_signature(keys)?;
        b64_decode(self.payload_b64).ok_or(JwsError::Malformed("payload is not base64url"))
    }

    /// Checks the signature with the key `keys` choose for it; the payload is left to the caller
    /// (who may have decoded it already).
    pub fn check_signature(&self, keys: &KeySet) -> Result<(), JwsError> {
        match keys.choose(self.kid.as_deref(), self.alg) {
            KeyChoice::Found(key) => self.check_signature_with(key),
            KeyChoice::Unknown => Err(JwsError::UnknownKey(self.kid.clone())),
            KeyChoice::Ambiguous => Err(JwsError::AmbiguousKey),
        }
    }

    fn check_signature_with(&self, key: &Jwk) -> Result<(), JwsError> {
        let parsed = key.key_for(self.alg).ok_or(JwsError::UnknownKey(self.kid.clone()))?;
        parsed.verify_sig(self.signing_input.as_bytes(), &self.signature).map_err(|_| JwsError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64_decode("Zm9v").unwrap(), b"foo");
        assert!(b64_decode("Zm9v=").is_none(), "padding");
        assert!(b64_decode("Zm8=").is_none(), "padding");
        assert_eq!(b64_decode("Zm8").unwrap(), b"fo");
        assert!(b64_decode("Zm9").is_none(), "non-canonical: trailing bits set");
        assert!(b64_decode("Zm9+").is_none(), "standard alphabet");
        assert!(b64_decode("Zm9=x").is_none());
        assert!(b64_decode("Zh").is_none(), "non-canonical trailing bits");
    }

    #[test]
    fn ambiguous_keys_verify_nothing() {
        // Two keys share a kid: a token naming it is refused even though one key would verify it.
        let mut issuer = spinegate_devpki::token::TokenIssuer::new("https://issuer.example").unwrap();
        issuer.rotate().unwrap();
        let mut jwks: serde_json::Value = serde_json::from_str(&issuer.jwks_json()).unwrap();
        jwks["keys"][0]["kid"] = jwks["keys"][1]["kid"].clone();
        let shared = KeySet::parse(jwks.to_string().as_bytes(), &[Alg::Rs256]).unwrap();
        let token = issuer.token(&serde_json::json!({"sub": "x"}));
        let unverified = decode(&token, &[Alg::Rs256], Limits::default()).unwrap();
        assert_eq!(unverified.verify(&shared).unwrap_err(), JwsError::AmbiguousKey);

        // Distinct kids, but the token names none while both keys fit its algorithm.
        let distinct = KeySet::parse(issuer.jwks_json().as_bytes(), &[Alg::Rs256]).unwrap();
        let no_kid = issuer.sign_raw(&serde_json::json!({"alg": "RS256"}), &serde_json::json!({"sub": "x"}));
        let unverified = decode(&no_kid, &[Alg::Rs256], Limits::default()).unwrap();
        assert_eq!(unverified.verify(&distinct).unwrap_err(), JwsError::AmbiguousKey);
        // With the kid, the same key set verifies it.
        let unverified = decode(&token, &[Alg::Rs256], Limits::default()).unwrap();
        assert!(unverified.verify(&distinct).is_ok());
    }

    #[test]
    fn header_rules_come_before_keys() {
        let h = |json: &str| format!("{}.e30.AAAA", b64_encode(json.as_bytes()));
        let allowed = [Alg::Rs256];
        let err = |json: &str| decode(&h(json), &allowed, Limits::default()).unwrap_err();
        assert_eq!(err(r#"{"alg":"none"}"#), JwsError::Algorithm("none".into()));
        assert_eq!(err(r#"{"alg":"HS256"}"#), JwsError::Algorithm("HS256".into()));
        assert_eq!(err(r#"{"alg":"RS512"}"#), JwsError::Algorithm("RS512".into()), "not in this issuer's list");
        assert_eq!(err(r#"{"alg":"RS256","jku":"http://evil"}"#), JwsError::ForbiddenHeader("jku"));
        assert_eq!(err(r#"{"alg":"RS256","jwk":{}}"#), JwsError::ForbiddenHeader("jwk"));
        assert_eq!(err(r#"{"alg":"RS256","x5u":"http://evil"}"#), JwsError::ForbiddenHeader("x5u"));
        assert_eq!(err(r#"{"alg":"RS256","crit":["exp"]}"#), JwsError::Critical);
        assert!(matches!(err(r#"{"alg":"RS256","alg":"none"}"#), JwsError::Header(_)));
        assert_eq!(decode("a.b", &allowed, Limits::default()).unwrap_err(), JwsError::Malformed("not three parts"));
        let long = "a".repeat(20_000);
        assert_eq!(decode(&long, &allowed, Limits::default()).unwrap_err(), JwsError::TooLarge);
    }
}
