//! A verified token's claims: the registered ones checked against the issuer's rules (`iss`,
//! `aud`, `exp`, `nbf`, `iat`, required claims) and the Care Identity ones read into typed
//! values — user id, role profiles, selected role, assurance levels, authenticator.

use std::sync::Arc;
use std::time::Duration;

use spinegate_vocab::{AssuranceLevel, Authenticator, UserId};

use crate::json::{Json, Object};

/// What a token must satisfy besides its signature.
#[derive(Clone, Debug)]
pub struct Rules {
    /// The exact `iss`.
    pub issuer: Arc<str>,
    /// Accepted audiences: `aud` must contain one. `azp` (the party the token was issued to)
    /// is not an audience: a token for another service is refused whoever requested it.
    pub audiences: Vec<String>,
    /// Tolerated clock difference.
    pub skew: Duration,
    /// Oldest acceptable `iat`.
    pub max_age: Duration,
    /// Claims that must be present.
    pub required: Vec<String>,
}

/// Why the claims are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The payload is not a JSON object (or has duplicate members).
    #[error("payload is not a JSON object: {0}")]
    Malformed(String),
    /// A required claim is absent or of the wrong type.
    #[error("claim {0:?} is missing or malformed")]
    Missing(String),
    /// `iss` is not the configured issuer.
    #[error("issuer does not match")]
    Issuer,
    /// `aud` names no accepted audience.
    #[error("audience does not match")]
    Audience,
    /// `exp` has passed.
    #[error("token expired at {exp}")]
    Expired {
        /// exp.
        exp: u64,
    },
    /// `nbf` or `iat` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is older than the maximum token age.
    #[error("token is older than the maximum age")]
    TooOld,
    /// No 12-digit user id in `nhsid_useruid` or `sub`.
    #[error("no Care Identity user id in the token")]
    UserId,
}

impl ClaimError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ClaimError::Malformed(_) => "malformed_claims",
            ClaimError::Missing(_) => "missing_claim",
            ClaimError::Issuer => "wrong_issuer",
            ClaimError::Audience => "wrong_audience",
            ClaimError::Expired { .. } => "expired",
            ClaimError::NotYetValid => "not_yet_valid",
            ClaimError::TooOld => "too_old",
            ClaimError::UserId => "no_user_id",
        }
    }
}

/// One role profile as the token lists it (`nhsid_nrbac_roles[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleClaim {
    /// `person_roleid` (URID).
    pub person_roleid: String,
    /// `org_code` (ODS).
    pub org_code: String,
    /// `role_code` (`S8000:G8000:R8000`).
    pub role_code: String,
    /// `role_name`.
    pub role_name: Option<String>,
    /// `activity_codes`.
    pub activity_codes: Vec<String>,
    /// `activities` (names).
    pub activities: Vec<String>,
    /// `workgroups`.
    pub workgroups: Vec<String>,
    /// `workgroups_codes`.
    pub workgroups_codes: Vec<String>,
}

/// Claims of a verified token.
#[derive(Clone, Debug)]
pub struct Claims {
    /// `iss` (the configured issuer's, shared).
    pub issuer: Arc<str>,
    /// `sub`.
    pub subject: String,
    /// The Care Identity user id.
    pub user_id: UserId,
    /// `exp`, seconds since the epoch.
    pub expires: u64,
    /// `iat`.
    pub issued_at: u64,
    /// `sid`: the session, for back-channel logout.
    pub session: Option<String>,
    /// `jti`.
    pub token_id: Option<String>,
    /// `authentication_assurance_level`.
    pub assurance: AssuranceLevel,
    /// `id_assurance_level`, when given.
    pub identity_assurance: Option<u8>,
    /// `acr`.
    pub acr: Option<String>,
    /// `amr`.
    pub amr: Vec<String>,
    /// The authenticator, from `amr`.
    pub authenticator: Authenticator,
    /// `nhsid_nrbac_roles`.
    pub roles: Vec<RoleClaim>,
    /// `selected_roleid`.
    pub selected_role: Option<String>,
    /// `cnf.x5t#S256`: SHA-256 of the certificate the token is bound to (RFC 8705).
    pub bound_certificate: Option<[u8; 32]>,
}

/// Checks `payload` against `rules` at `now` and reads the claims.
pub fn check(payload: &[u8], rules: &Rules, now: u64) -> Result<Claims, ClaimError> {
    check_object(&parse_object(payload)?, rules, now)
}

/// Parses a payload strictly (duplicate members refused) as a JSON object.
pub fn parse_object(payload: &[u8]) -> Result<Object<'_>, ClaimError> {
    match crate::json::parse_strict(payload).map_err(ClaimError::Malformed)? {
        Json::Object(map) => Ok(map),
        _ => Err(ClaimError::Malformed("not an object".into())),
    }
}

/// The members [`check_object`] reads, found in one pass over the object.
#[derive(Default)]
struct Known<'o, 'a> {
    iss: Option<&'o Json<'a>>,
    aud: Option<&'o Json<'a>>,
    events: Option<&'o Json<'a>>,
    exp: Option<&'o Json<'a>>,
    nbf: Option<&'o Json<'a>>,
    iat: Option<&'o Json<'a>>,
    sub: Option<&'o Json<'a>>,
    user_id: Option<&'o Json<'a>>,
    sid: Option<&'o Json<'a>>,
    jti: Option<&'o Json<'a>>,
    aal: Option<&'o Json<'a>>,
    ial: Option<&'o Json<'a>>,
    acr: Option<&'o Json<'a>>,
    amr: Option<&'o Json<'a>>,
    roles: Option<&'o Json<'a>>,
    selected: Option<&'o Json<'a>>,
    cnf: Option<&'o Json<'a>>,
}

impl<'o, 'a> Known<'o, 'a> {
    fn of(claims: &'o Object<'a>) -> Self {
        let mut k = Self::default();
        for (name, value) in claims.iter() {
            let slot = match name {
                "iss" => &mut k.iss,
                "aud" => &mut k.aud,
                "events" => &mut k.events,
                "exp" => &mut k.exp,
                "nbf" => &mut k.nbf,
                "iat" => &mut k.iat,
                "sub" => &mut k.sub,
                "nhsid_useruid" => &mut k.user_id,
                "sid" => &mut k.sid,
                "jti" => &mut k.jti,
                "authentication_assurance_level" => &mut k.aal,
                "id_assurance_level" => &mut k.ial,
                "acr" => &mut k.acr,
                "amr" => &mut k.amr,
                "nhsid_nrbac_roles" => &mut k.roles,
                "selected_roleid" => &mut k.selected,
                "cnf" => &mut k.cnf,
                _ => continue,
            };
            *slot = Some(value);
        }
        k
    }
}

/// [`check`] of a payload already parsed by [`parse_object`].
pub fn check_object(claims: &Object<'_>, rules: &Rules, now: u64) -> Result<Claims, ClaimError> {
    for name in &rules.required {
        if !claims.contains_key(name) {
            return Err(ClaimError::Missing(name.clone()));
        }
    }
    let k = Known::of(claims);
    let skew = rules.skew.as_secs();
    let issuer = k.iss.and_then(Json::as_str).ok_or_else(|| ClaimError::Missing("iss".into()))?;
    if issuer != &*rules.issuer {
        return Err(ClaimError::Issuer);
    }
    let accepted = |a: &str| rules.audiences.iter().any(|r| r == a);
    let audience_ok = match k.aud {
        Some(Json::String(a)) => accepted(a),
        Some(Json::Array(list)) => list.iter().any(|a| a.as_str().is_some_and(accepted)),
        _ => false,
    };
    if !audience_ok {
        return Err(ClaimError::Audience);
    }
    // A logout token (its `events` claim) is never a bearer token, whatever its `typ` says.
    if k.events.is_some() {
        return Err(ClaimError::Malformed("a logout token is not an access token".into()));
    }
    let exp = k.exp.and_then(number).ok_or_else(|| ClaimError::Missing("exp".into()))?;
    if now >= exp.saturating_add(skew) {
        return Err(ClaimError::Expired { exp });
    }
    if let Some(nbf) = k.nbf {
        let nbf = nbf.as_u64().ok_or_else(|| ClaimError::Missing("nbf".into()))?;
        if nbf > now.saturating_add(skew) {
            return Err(ClaimError::NotYetValid);
        }
    }
    let iat = k.iat.and_then(number).ok_or_else(|| ClaimError::Missing("iat".into()))?;
    if iat > now.saturating_add(skew) {
        return Err(ClaimError::NotYetValid);
    }
    if now.saturating_sub(iat) > rules.max_age.as_secs().saturating_add(skew) {
        return Err(ClaimError::TooOld);
    }
    let subject = k.sub.and_then(Json::as_str).ok_or_else(|| ClaimError::Missing("sub".into()))?;
    let user_id = k
        .user_id
        .and_then(Json::as_str)
        .and_then(UserId::parse)
        .or_else(|| UserId::parse(subject))
        .ok_or(ClaimError::UserId)?;
    let amr: Vec<String> = k.amr.map(strings).unwrap_or_default();
    let assurance = k.aal.and_then(level).map_or(AssuranceLevel::Aal1, |l| match l {
        3.. => AssuranceLevel::Aal3,
        2 => AssuranceLevel::Aal2,
        _ => AssuranceLevel::Aal1,
    });
    let bound_certificate = match k.cnf {
        None => None,
        Some(cnf) => {
            let thumb = cnf
                .get("x5t#S256")
                .and_then(Json::as_str)
                .and_then(crate::jose::b64_decode)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| ClaimError::Missing("cnf.x5t#S256".into()))?;
            Some(thumb)
        }
    };
    let owned = |v: Option<&Json<'_>>| v.and_then(Json::as_str).map(str::to_owned);
    Ok(Claims {
        issuer: Arc::clone(&rules.issuer),
        subject: subject.to_owned(),
        user_id,
        expires: exp,
        issued_at: iat,
        session: owned(k.sid),
        token_id: owned(k.jti),
        assurance,
        identity_assurance: k.ial.and_then(level),
        acr: owned(k.acr),
        authenticator: Authenticator::from_amr(&amr),
        amr,
        roles: k.roles.map(roles).transpose()?.unwrap_or_default(),
        selected_role: k.selected.and_then(|v| match v {
            Json::String(s) => Some(s.to_string()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        }),
        bound_certificate,
    })
}

fn number(v: &Json<'_>) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// A list of strings given as an array (non-strings skipped) or as one string.
fn strings(v: &Json<'_>) -> Vec<String> {
    match v {
        Json::Array(list) => list.iter().filter_map(Json::as_str).map(str::to_owned).collect(),
        Json::String(s) => vec![s.to_string()],
        _ => Vec::new(),
    }
}

/// An assurance level given as a number or a string ("3", "AAL3").
fn level(v: &Json<'_>) -> Option<u8> {
    match v {
        Json::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        Json::String(s) => s.strip_prefix("AAL").or_else(|| s.strip_prefix("aal")).unwrap_or(s).parse().ok(),
        _ => None,
    }
}

fn roles(list: &Json<'_>) -> Result<Vec<RoleClaim>, ClaimError> {
    let list = list.as_array().ok_or_else(|| ClaimError::Missing("nhsid_nrbac_roles".into()))?;
    list.iter()
        .map(|role| {
            let role = role.as_object().ok_or_else(|| ClaimError::Missing("nhsid_nrbac_roles[]".into()))?;
            let (mut person_roleid, mut org_code, mut role_code, mut role_name) = (None, None, None, None);
            let mut role_claim = RoleClaim::default();
            for (name, value) in role.iter() {
                match name {
                    "person_roleid" => person_roleid = Some(value),
                    "org_code" => org_code = Some(value),
                    "role_code" => role_code = Some(value),
                    "role_name" => role_name = value.as_str(),
                    "activity_codes" => role_claim.activity_codes = strings(value),
                    "activities" => role_claim.activities = strings(value),
                    "workgroups" => role_claim.workgroups = strings(value),
                    "workgroups_codes" => role_claim.workgroups_codes = strings(value),
                    _ => {}
                }
            }
            let required = |value: Option<&Json<'_>>, name: &str| {
                value
                    .and_then(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
                    .ok_or_else(|| ClaimError::Missing(format!("nhsid_nrbac_roles[].{name}")))
            };
            role_claim.person_roleid = required(person_roleid, "person_roleid")?;
            role_claim.org_code = required(org_code, "org_code")?;
            role_claim.role_code = required(role_code, "role_code")?;
            role_claim.role_name = role_name.map(str::to_owned);
            Ok(role_claim)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            issuer: "https://ci.example".into(),
            audiences: vec!["spinegate".into()],
            skew: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
            required: Vec::new(),
        }
    }

    fn payload(extra: &str) -> Vec<u8> {
        format!(r#"{{"iss":"https://ci.example","aud":"spinegate","sub":"555000000007","exp":2000,"iat":1000{extra}}}"#)
            .into_bytes()
    }

    #[test]
    fn registered_claims_are_checked_with_skew() {
        assert!(check(&payload(""), &rules(), 1500).is_ok());
        assert_eq!(check(&payload(""), &rules(), 2060).unwrap_err(), ClaimError::Expired { exp: 2000 });
        assert!(check(&payload(""), &rules(), 2059).is_ok(), "within skew");
        assert_eq!(check(&payload(""), &rules(), 900).unwrap_err(), ClaimError::NotYetValid);
        assert_eq!(check(&payload(r#","nbf":1700"#), &rules(), 1500).unwrap_err(), ClaimError::NotYetValid);
        let old = r#"{"iss":"https://ci.example","aud":"spinegate","sub":"555000000007","exp":9000,"iat":1000}"#;
        assert_eq!(check(old.as_bytes(), &rules(), 1000 + 3600 + 61).unwrap_err(), ClaimError::TooOld);
    }

    #[test]
    fn issuer_and_audience() {
        let wrong_iss = br#"{"iss":"https://evil","aud":"spinegate","sub":"555000000007","exp":2000,"iat":1000}"#;
        assert_eq!(check(wrong_iss, &rules(), 1500).unwrap_err(), ClaimError::Issuer);
        let wrong_aud = br#"{"iss":"https://ci.example","aud":["other"],"sub":"555000000007","exp":2000,"iat":1000}"#;
        assert_eq!(check(wrong_aud, &rules(), 1500).unwrap_err(), ClaimError::Audience);
    }

    #[test]
    fn a_token_for_another_service_is_refused_even_if_our_client_requested_it() {
        let azp = br#"{"iss":"https://ci.example","aud":["other"],"azp":"spinegate","sub":"555000000007","exp":2000,"iat":1000}"#;
        assert_eq!(check(azp, &rules(), 1500).unwrap_err(), ClaimError::Audience);
    }

    #[test]
    fn a_logout_token_is_not_an_access_token() {
        let logout = br#"{"iss":"https://ci.example","aud":"spinegate","sub":"555000000007","exp":2000,"iat":1000,"events":{"http://schemas.openid.net/event/backchannel-logout":{}}}"#;
        assert!(matches!(check(logout, &rules(), 1500).unwrap_err(), ClaimError::Malformed(_)));
    }

    #[test]
    fn care_identity_claims_are_read() {
        let p = payload(
            r#","nhsid_useruid":"555000000008","authentication_assurance_level":"3","id_assurance_level":3,
               "amr":["FIDO2"],"sid":"s-1","selected_roleid":"555254242106",
               "nhsid_nrbac_roles":[{"person_roleid":"555254242106","org_code":"RX1","role_code":"S8000:G8000:R8000",
               "role_name":"Clinical Practitioner","activity_codes":["B0370","B0360"],"activities":["View SCR"]}],
               "cnf":{"x5t#S256":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
        );
        let c = check(&p, &rules(), 1500).unwrap();
        assert_eq!(c.user_id.as_str(), "555000000008", "nhsid_useruid wins over sub");
        assert_eq!(c.assurance, AssuranceLevel::Aal3);
        assert_eq!(c.identity_assurance, Some(3));
        assert_eq!(c.authenticator, Authenticator::SecurityKey);
        assert_eq!(c.roles[0].activity_codes, vec!["B0370", "B0360"]);
        assert_eq!(c.selected_role.as_deref(), Some("555254242106"));
        assert_eq!(c.bound_certificate, Some([0; 32]));
    }

    #[test]
    fn numeric_assurance_and_missing_user_id() {
        let c = check(&payload(r#","authentication_assurance_level":2"#), &rules(), 1500).unwrap();
        assert_eq!(c.assurance, AssuranceLevel::Aal2);
        let bad = br#"{"iss":"https://ci.example","aud":"spinegate","sub":"alice","exp":2000,"iat":1000}"#;
        assert_eq!(check(bad, &rules(), 1500).unwrap_err(), ClaimError::UserId);
    }
}
