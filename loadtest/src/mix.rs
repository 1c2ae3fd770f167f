//! The traffic mix: which users sessions are for (smartcard vs each authenticator), which HTTP
//! version they speak, and which users may be picked at all.

use std::collections::BTreeMap;

use spinegate_devpki::population::{Credential, Population, TokenAuthenticator};

use crate::expect::{Profile, expected};
use crate::rng::Rng;

/// The kind of user a session is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserKind {
    /// A smartcard user.
    Smartcard,
    /// A token user with this authenticator.
    Token(TokenAuthenticator),
}

impl UserKind {
    /// The kind of a credential.
    pub fn of(credential: Credential) -> Self {
        match credential {
            Credential::Smartcard(_) => UserKind::Smartcard,
            Credential::Token(a) => UserKind::Token(a),
        }
    }
}

/// One weighted entry of a [`Mix`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixKey {
    /// Smartcard users.
    Smartcard,
    /// Token users of any authenticator.
    AnyToken,
    /// Token users of one authenticator.
    Token(TokenAuthenticator),
}

/// Who sessions are for.
#[derive(Clone, Debug, PartialEq)]
pub enum Mix {
    /// Users picked uniformly: the population's own mix.
    Population,
    /// A kind picked by weight, then a user of that kind.
    Weighted(Vec<(MixKey, f64)>),
}

/// An HTTP version a session speaks (offered by ALPN; HTTP/3 over QUIC to the same port number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// HTTP/1.1 over TLS.
    Http1,
    /// HTTP/2 over TLS.
    Http2,
    /// HTTP/3 over QUIC (UDP, the target's port number).
    Http3,
}

impl Protocol {
    /// The ALPN identifier offered.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Protocol::Http1 => b"http/1.1",
            Protocol::Http2 => b"h2",
            Protocol::Http3 => b"h3",
        }
    }

    /// `h1` or `h2`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "h1",
            Protocol::Http2 => "h2",
            Protocol::Http3 => "h3",
        }
    }
}

/// Which users may be picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserFilter {
    /// Everyone, refused classes included.
    All,
    /// Only users the profile says are served (a pure throughput run).
    Served,
}

/// Why a mix cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MixError {
    /// Not `name=weight,…`.
    #[error("{what} {text:?}: expected name=weight[,name=weight…]")]
    Syntax {
        /// Which option.
        what: &'static str,
        /// The text.
        text: String,
    },
    /// A name that is not a kind or protocol.
    #[error("{what}: unknown {name:?} (expected one of {expected})")]
    Unknown {
        /// Which option.
        what: &'static str,
        /// The name.
        name: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// A weight that is negative or not a number, or all weights zero.
    #[error("{what}: weights must be non-negative numbers, not all zero")]
    Weights {
        /// Which option.
        what: &'static str,
    },
    /// A kind with weight that has no users to pick.
    #[error("the mix asks for {kind} users, but the population has none{filtered}")]
    NoUsers {
        /// The kind.
        kind: String,
        /// Whether the user filter removed them.
        filtered: &'static str,
    },
}

const MIX_NAMES: &str =
    "population, smartcard, token, security_key, windows_hello, ipad, microsoft_authenticator, nhsmail";

/// Parses `population` or `smartcard=80,token=20` (any of smartcard, token, or an authenticator:
/// security_key, windows_hello, ipad, microsoft_authenticator, nhsmail; a bare name weighs 1).
pub fn parse_mix(text: &str) -> Result<Mix, MixError> {
    if text.trim() == "population" {
        return Ok(Mix::Population);
    }
    let entries = weights("--mix", text, |name| match name {
        "smartcard" => Some(MixKey::Smartcard),
        "token" => Some(MixKey::AnyToken),
        other => TokenAuthenticator::from_name(other).map(MixKey::Token),
    })
    .map_err(|e| match e {
        MixError::Unknown { what, name, .. } => MixError::Unknown { what, name, expected: MIX_NAMES },
        other => other,
    })?;
    Ok(Mix::Weighted(entries))
}

/// Parses `h1`, `h2`, `h3` or weights such as `h1=3,h2=1,h3=1`.
pub fn parse_protocols(text: &str) -> Result<Vec<(Protocol, f64)>, MixError> {
    let named = |name: &str| match name {
        "h1" | "http1" | "http/1.1" => Some(Protocol::Http1),
        "h2" | "http2" => Some(Protocol::Http2),
        "h3" | "http3" => Some(Protocol::Http3),
        _ => None,
    };
    let text = text.trim();
    if let Some(protocol) = named(text) {
        return Ok(vec![(protocol, 1.0)]);
    }
    weights("--http", text, named).map_err(|e| match e {
        MixError::Unknown { what, name, .. } => MixError::Unknown { what, name, expected: "h1, h2" },
        other => other,
    })
}

fn weights<T>(what: &'static str, text: &str, name: impl Fn(&str) -> Option<T>) -> Result<Vec<(T, f64)>, MixError> {
    let mut out = Vec::new();
    for part in text.split(',') {
        // A bare name weighs 1: `h2` alone, or `smartcard` alone.
        let (key, weight) = part.split_once('=').unwrap_or((part, "1"));
        let key = key.trim();
        let value = name(key).ok_or_else(|| MixError::Unknown { what, name: key.to_owned(), expected: "" })?;
        let weight: f64 = weight.trim().parse().map_err(|_| MixError::Syntax { what, text: text.to_owned() })?;
        if !(weight >= 0.0 && weight.is_finite()) {
            return Err(MixError::Weights { what });
        }
        out.push((value, weight));
    }
    if out.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
        return Err(MixError::Weights { what });
    }
    Ok(out)
}

/// Picks one of weighted items.
pub fn pick_weighted<T: Copy>(items: &[(T, f64)], rng: &mut Rng) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.unit() * total;
    for (item, weight) in items {
        if x < *weight {
            return *item;
        }
        x -= weight;
    }
    items[items.len() - 1].0
}

/// Picks users for sessions: the pickable users' indexes, by kind (4 bytes a user, so a
/// million-user population costs 8 MB here).
#[derive(Debug)]
pub struct Picker {
    all: Vec<u32>,
    groups: Vec<(Vec<u32>, f64)>,
    /// Pickable users per kind.
    pub counts: BTreeMap<UserKind, usize>,
}

impl Picker {
    /// Indexes the users `filter` admits, and checks every weighted kind has some.
    pub fn build(population: &Population, mix: &Mix, filter: UserFilter, profile: Profile) -> Result<Self, MixError> {
        let mut by_kind: BTreeMap<UserKind, Vec<u32>> = BTreeMap::new();
        let mut all = Vec::new();
        for index in 0..population.len() {
            let user = population.user(index);
            if filter == UserFilter::Served && !expected(profile, &user).is_served() {
                continue;
            }
            all.push(index);
            by_kind.entry(UserKind::of(user.credential)).or_default().push(index);
        }
        let filtered = if filter == UserFilter::Served { " (after --users served)" } else { "" };
        if all.is_empty() {
            return Err(MixError::NoUsers { kind: "any".into(), filtered });
        }
        let counts = by_kind.iter().map(|(k, v)| (*k, v.len())).collect();
        let groups = match mix {
            Mix::Population => Vec::new(),
            Mix::Weighted(entries) => {
                let mut groups = Vec::new();
                for (key, weight) in entries {
                    let members: Vec<u32> = by_kind
                        .iter()
                        .filter(|(kind, _)| match (key, kind) {
                            (MixKey::Smartcard, UserKind::Smartcard) => true,
                            (MixKey::AnyToken, UserKind::Token(_)) => true,
                            (MixKey::Token(a), UserKind::Token(b)) => a == b,
                            _ => false,
                        })
                        .flat_map(|(_, v)| v.iter().copied())
                        .collect();
                    if members.is_empty() && *weight > 0.0 {
                        let kind = match key {
                            MixKey::Smartcard => "smartcard".to_owned(),
                            MixKey::AnyToken => "token".to_owned(),
                            MixKey::Token(a) => a.name().to_owned(),
                        };
                        return Err(MixError::NoUsers { kind, filtered });
                    }
                    groups.push((members, *weight));
                }
                groups
            }
        };
        Ok(Self { all, groups, counts })
    }

    /// A user index.
    pub fn pick(&self, rng: &mut Rng) -> u32 {
        let members = if self.groups.is_empty() {
            &self.all
        } else {
            let total: f64 = self.groups.iter().map(|(_, w)| w).sum();
            let mut x = rng.unit() * total;
            let mut chosen = &self.groups[self.groups.len() - 1].0;
            for (members, weight) in &self.groups {
                if x < *weight {
                    chosen = members;
                    break;
                }
                x -= weight;
            }
            chosen
        };
        members[rng.below(members.len() as u64) as usize]
    }

    /// Pickable users.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether nobody is pickable (never, once built).
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse() {
        assert_eq!(parse_mix("population").unwrap(), Mix::Population);
        assert_eq!(
            parse_mix("smartcard=80, token=20").unwrap(),
            Mix::Weighted(vec![(MixKey::Smartcard, 80.0), (MixKey::AnyToken, 20.0)])
        );
        assert_eq!(parse_mix("ipad=1").unwrap(), Mix::Weighted(vec![(MixKey::Token(TokenAuthenticator::Ipad), 1.0)]));
        assert_eq!(parse_mix("smartcard").unwrap(), Mix::Weighted(vec![(MixKey::Smartcard, 1.0)]));
        assert!(matches!(parse_mix("smartcard=x"), Err(MixError::Syntax { .. })));
        assert!(matches!(parse_mix("pigeon=1"), Err(MixError::Unknown { .. })));
        assert!(matches!(parse_mix("smartcard=-1"), Err(MixError::Weights { .. })));
        assert!(matches!(parse_mix("smartcard=0"), Err(MixError::Weights { .. })));
    }

    #[test]
    fn protocols_parse_and_http3_is_named_but_refused() {
        assert_eq!(parse_protocols("h2").unwrap(), vec![(Protocol::Http2, 1.0)]);
        assert_eq!(parse_protocols("h1=3,h2=1").unwrap(), vec![(Protocol::Http1, 3.0), (Protocol::Http2, 1.0)]);
        assert_eq!(parse_protocols("h3").unwrap(), vec![(Protocol::Http3, 1.0)]);
        assert_eq!(parse_protocols("h1=1,h3=1").unwrap(), vec![(Protocol::Http1, 1.0), (Protocol::Http3, 1.0)]);
        assert!(matches!(parse_protocols("spdy"), Err(MixError::Unknown { .. })));
    }

    #[test]
    fn weighted_picks_follow_weights() {
        let mut rng = Rng::new(4);
        let items = [(1, 3.0), (2, 1.0), (3, 0.0)];
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[pick_weighted(&items, &mut rng)] += 1;
        }
        assert_eq!(counts[3], 0);
        let share = f64::from(counts[1]) / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }
}
