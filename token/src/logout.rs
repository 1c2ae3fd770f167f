//! OpenID Connect Back-Channel Logout 1.0: the issuer posts a signed logout token naming a
//! session (`sid`) or a user (`sub`); tokens of that session or user issued before the logout are
//! refused from then on, until they would have expired anyway.

use std::sync::Arc;
use std::time::Duration;

use crate::claims::Claims;
use crate::json::{Json, Object, parse_strict};

/// The `events` member a logout token must carry.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What a valid logout token asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutRequest {
    /// The session, if named.
    pub session: Option<String>,
    /// The user (`sub`), if named.
    pub subject: Option<String>,
    /// `jti`.
    pub token_id: String,
    /// `iat`.
    pub issued_at: u64,
}

/// Why a logout token is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    /// Not a logout token (claims missing, wrong, or a `nonce` present).
    #[error("not a valid logout token: {0}")]
    Invalid(&'static str),
    /// This `jti` was already used.
    #[error("logout token replayed")]
    Replay,
}

/// Checks a logout token's verified payload (OIDC Back-Channel Logout §2.6).
pub fn check(
    payload: &[u8],
    issuer: &str,
    audiences: &[String],
    skew: Duration,
    max_age: Duration,
    now: u64,
) -> Result<LogoutRequest, LogoutError> {
    let value = parse_strict(payload).map_err(|_| LogoutError::Invalid("payload is not JSON"))?;
    let claims = value.as_object().ok_or(LogoutError::Invalid("payload is not an object"))?;
    check_object(claims, issuer, audiences, skew, max_age, now)
}

/// [`check`] of a payload already parsed strictly.
pub fn check_object(
    claims: &Object<'_>,
    issuer: &str,
    audiences: &[String],
    skew: Duration,
    max_age: Duration,
    now: u64,
) -> Result<LogoutRequest, LogoutError> {
    if claims.get("iss").and_then(Json::as_str) != Some(issuer) {
        return Err(LogoutError::Invalid("iss"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Json::String(a)) => audiences.iter().any(|r| r == a),
        Some(Json::Array(list)) => list.iter().any(|a| a.as_str().is_some_and(|a| audiences.iter().any(|r| r == a))),
        _ => false,
    };
    if !aud_ok {
        return Err(LogoutError::Invalid("aud"));
    }
    let iat = claims.get("iat").and_then(Json::as_u64).ok_or(LogoutError::Invalid("iat"))?;
    if iat > now + skew.as_secs() || now.saturating_sub(iat) > max_age.as_secs() + skew.as_secs() {
        return Err(LogoutError::Invalid("iat"));
    }
    if let Some(exp) = claims.get("exp")
        && exp.as_u64().is_none_or(|exp| now >= exp + skew.as_secs())
    {
        return Err(LogoutError::Invalid("exp"));
    }
    let event = claims.get("events").and_then(|e| e.get(LOGOUT_EVENT));
    if !event.is_some_and(Json::is_object) {
        return Err(LogoutError::Invalid("events"));
    }
    if claims.contains_key("nonce") {
        return Err(LogoutError::Invalid("nonce"));
    }
    let token_id = claims.get("jti").and_then(Json::as_str).ok_or(LogoutError::Invalid("jti"))?.to_owned();
    let session = claims.get("sid").and_then(Json::as_str).map(str::to_owned);
    let subject = claims.get("sub").and_then(Json::as_str).map(str::to_owned);
    if session.is_none() && subject.is_none() {
        return Err(LogoutError::Invalid("sid or sub"));
    }
    Ok(LogoutRequest { session, subject, token_id, issued_at: iat })
}

/// Logged-out sessions and users, each remembered as long as a token it covers could live.
#[derive(Debug)]
pub struct Logouts {
    /// Logouts ever recorded: while zero, no lookup (and no key allocation) is needed. (moka's
    /// entry counts are eventually consistent, so they cannot serve this purpose.)
    recorded: std::sync::atomic::AtomicU64,
    sessions: moka::sync::Cache<(Arc<str>, String), u64>,
    subjects: moka::sync::Cache<(Arc<str>, String), u64>,
    used_ids: moka::sync::Cache<(Arc<str>, String), ()>,
}

impl Logouts {
    /// Remembers entries for `lifetime` (the longest a token lives).
    pub fn new(lifetime: Duration) -> Self {
        let cache = || moka::sync::Cache::builder().max_capacity(1_000_000).time_to_live(lifetime).build();
        Self {
            recorded: std::sync::atomic::AtomicU64::new(0),
            sessions: cache(),
            subjects: cache(),
            used_ids: moka::sync::Cache::builder().max_capacity(1_000_000).time_to_live(lifetime).build(),
        }
    }

    /// Records a verified logout from `issuer` at `now`. Refuses a replayed `jti`.
    pub fn record(&self, issuer: &Arc<str>, request: &LogoutRequest, now: u64) -> Result<(), LogoutError> {
        let key = (Arc::clone(issuer), request.token_id.clone());
        if self.used_ids.contains_key(&key) {
            return Err(LogoutError::Replay);
        }
        self.used_ids.insert(key, ());
        // Tokens issued up to the logout are covered, by the later of the two clocks: the
        // issuer's (its logout token's iat) and ours, so skew between them lets none through.
        let now = now.max(request.issued_at);
        self.recorded.fetch_add(1, std::sync::atomic::Ordering::Release);
        if let Some(sid) = &request.session {
            self.sessions.insert((Arc::clone(issuer), sid.clone()), now);
        }
        if let Some(sub) = &request.subject {
            self.subjects.insert((Arc::clone(issuer), sub.clone()), now);
        }
        Ok(())
    }

    /// Whether a token with these claims was issued before its session or user logged out.
    pub fn covers(&self, issuer: &Arc<str>, claims: &Claims) -> bool {
        let logged_out_before_issue = |at: Option<u64>| at.is_some_and(|at| claims.issued_at <= at);
        if self.recorded.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return false;
        }
        claims
            .session
            .as_ref()
            .is_some_and(|sid| logged_out_before_issue(self.sessions.get(&(Arc::clone(issuer), sid.clone()))))
            || logged_out_before_issue(self.subjects.get(&(Arc::clone(issuer), claims.subject.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"iss":"https://ci.example","aud":"spinegate","iat":1000,"jti":"j1","events":{{"{LOGOUT_EVENT}":{{}}}}{extra}}}"#
        )
        .into_bytes()
    }

    fn run(p: &[u8]) -> Result<LogoutRequest, LogoutError> {
        check(p, "https://ci.example", &["spinegate".into()], Duration::from_secs(60), Duration::from_secs(600), 1010)
    }

    #[test]
    fn logout_tokens_need_the_event_a_subject_and_no_nonce() {
        assert_eq!(run(&payload(r#","sid":"s1""#)).unwrap().session.as_deref(), Some("s1"));
        assert_eq!(run(&payload("")).unwrap_err(), LogoutError::Invalid("sid or sub"));
        assert_eq!(run(&payload(r#","sid":"s1","nonce":"n""#)).unwrap_err(), LogoutError::Invalid("nonce"));
        let no_event = br#"{"iss":"https://ci.example","aud":"spinegate","iat":1000,"jti":"j1","sid":"s1"}"#;
        assert_eq!(run(no_event).unwrap_err(), LogoutError::Invalid("events"));
    }

    #[test]
    fn a_logout_covers_tokens_issued_up_to_the_later_of_both_clocks() {
        let rules = crate::claims::Rules {
            issuer: "https://ci.example".into(),
            audiences: vec!["spinegate".into()],
            skew: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
            required: Vec::new(),
        };
        let token = |iat: u64, sid: &str| {
            let p = format!(
                r#"{{"iss":"https://ci.example","aud":"spinegate","sub":"555000000001","sid":"{sid}","iat":{iat},"exp":{}}}"#,
                iat + 600
            );
            crate::claims::check(p.as_bytes(), &rules, iat).unwrap()
        };
        let issuer: Arc<str> = "ci".into();
        let logouts = Logouts::new(Duration::from_secs(3600));
        assert!(!logouts.covers(&issuer, &token(1000, "s1")), "nothing recorded yet");
        // The issuer's clock runs ahead of ours: its logout token says 1005, ours says 1000.
        let request =
            LogoutRequest { session: Some("s1".into()), subject: None, token_id: "j1".into(), issued_at: 1005 };
        logouts.record(&issuer, &request, 1000).unwrap();
        assert!(logouts.covers(&issuer, &token(1003, "s1")), "issued before the issuer's logout");
        assert!(!logouts.covers(&issuer, &token(1010, "s1")), "issued after it");
        assert!(!logouts.covers(&issuer, &token(1003, "s2")), "another session");
        assert_eq!(logouts.record(&issuer, &request, 1001), Err(LogoutError::Replay));
    }
}
