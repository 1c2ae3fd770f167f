//! Who user `i` is, derived from the population's seed and `i` alone: credential, card state,
//! names, role profiles, serial. Nothing here is stored per user, so a loader, an OCSP responder
//! and the generator agree on every user without a table.
//!
//! Classes are spread with a low-discrepancy (R2) sequence rather than a hash: every contiguous
//! run of users shows each class close to its fraction, so even a 200-user population has a few
//! of each expected-failure kind.

use serde::{Deserialize, Serialize};

/// The R2 sequence's two step sizes (1/g and 1/g², g the plastic number).
const R2_A1: f64 = 0.754_877_666_246_692_7;
const R2_A2: f64 = 0.569_840_290_998_053_2;

/// First user id; user `i` is `USER_ID_BASE + i`, twelve digits.
const USER_ID_BASE: u64 = 700_000_000_000;
/// First role profile id; user `i`'s k-th profile is `ROLE_ID_BASE + 4i + k`.
const ROLE_ID_BASE: u64 = 800_000_000_000;

/// The clinical job role (Clinical Practitioner Access Role).
pub const CLINICIAN_ROLE_CODE: &str = "S8000:G8000:R8000";
/// An admin clerk's job role.
pub const ADMIN_CLERK_ROLE_CODE: &str = "S8001:G8005:R8008";
/// What a clinician's profiles grant: view demographics (what the patient route asks for) and
/// view the detailed record.
pub const CLINICIAN_ACTIVITIES: &[&str] = &["B0820", "B0360"];
/// What an admin clerk's profile grants: manage appointments, not patient records.
pub const ADMIN_CLERK_ACTIVITIES: &[&str] = &["B0572"];

const SURNAMES: &[&str] = &[
    "SMITH", "JONES", "WILLIAMS", "TAYLOR", "BROWN", "DAVIES", "EVANS", "WILSON", "THOMAS", "JOHNSON", "ROBERTS",
    "ROBINSON", "THOMPSON", "WRIGHT", "WALKER", "WHITE", "EDWARDS", "HUGHES", "GREEN", "HALL", "LEWIS", "HARRIS",
    "CLARKE", "PATEL", "JACKSON", "WOOD", "TURNER", "MARTIN", "COOPER", "HILL", "WARD", "MORRIS", "MOORE", "CLARK",
    "LEE", "KING", "BAKER", "HARRISON", "MORGAN", "ALLEN", "KHAN", "OKAFOR", "NOWAK", "MURPHY", "CHEN", "SINGH",
];
const FORENAMES: &[&str] = &[
    "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah", "Mia", "Jack", "Ivy", "Leo", "Lily", "Arthur",
    "Isabella", "Muhammad", "Rosie", "Oscar", "Sophia", "Charlie", "Grace", "Jacob", "Freya", "Thomas", "Olivia",
    "Aisha", "Priya", "Tomasz", "Chidi", "Mei", "Siobhan", "Rhys", "Catrin", "Eilidh", "Hamish",
];

/// What fraction of the population is in each class. Token users, revoked, expired and
/// expiring cards are disjoint shares of all users; `no_role` is drawn independently and applies
/// to card and token users alike.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fractions {
    /// Users without a smartcard who sign in with another authenticator and a token.
    pub token: f64,
    /// Card users whose certificate is revoked.
    pub revoked: f64,
    /// Card users whose certificate has expired.
    pub expired: f64,
    /// Card users whose certificate ends inside the 90-day warning window.
    pub expiring: f64,
    /// Users whose only role profile lacks the activity the patient route needs.
    pub no_role: f64,
}

impl Default for Fractions {
    fn default() -> Self {
        Self { token: 0.20, revoked: 0.02, expired: 0.02, expiring: 0.05, no_role: 0.03 }
    }
}

/// Why a set of fractions cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FractionsError {
    /// A fraction outside 0..=1 (or not a number).
    #[error("fraction {name} = {value} is not between 0 and 1")]
    OutOfRange {
        /// Which.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// The disjoint shares add up to more than everyone.
    #[error("token + revoked + expired + expiring = {sum}, more than 1")]
    Oversubscribed {
        /// The sum.
        sum: f64,
    },
}

impl Fractions {
    /// Checks every fraction is in 0..=1 and the disjoint shares fit in one population.
    pub fn validated(self) -> Result<Self, FractionsError> {
        for (name, value) in [
            ("token", self.token),
            ("revoked", self.revoked),
            ("expired", self.expired),
            ("expiring", self.expiring),
            ("no_role", self.no_role),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(FractionsError::OutOfRange { name, value });
            }
        }
        let sum = self.token + self.revoked + self.expired + self.expiring;
        if sum > 1.0 + 1e-9 {
            return Err(FractionsError::Oversubscribed { sum });
        }
        Ok(self)
    }
}

/// The state of a card user's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// Valid for two years.
    Valid,
    /// Ends 45 days after the population was made: inside the 90-day window.
    ExpiringSoon,
    /// Ended ten days before the population was made.
    Expired,
    /// Valid, but revoked (OCSP and the CRL say so).
    Revoked,
}

/// The authenticator a token-only user signs in with (the token's `amr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthenticator {
    /// A FIDO2 security key.
    SecurityKey,
    /// Windows Hello for Business.
    WindowsHello,
    /// An iPad.
    Ipad,
    /// Microsoft Authenticator.
    MicrosoftAuthenticator,
    /// An NHSmail login.
    Nhsmail,
}

impl TokenAuthenticator {
    /// Every authenticator, with its share of token users.
    pub const SHARES: [(TokenAuthenticator, f64); 5] = [
        (TokenAuthenticator::SecurityKey, 0.30),
        (TokenAuthenticator::WindowsHello, 0.25),
        (TokenAuthenticator::Ipad, 0.20),
        (TokenAuthenticator::MicrosoftAuthenticator, 0.15),
        (TokenAuthenticator::Nhsmail, 0.10),
    ];

    /// The gateway's spelling (`security_key` …), as in `X-Spinegate-Auth-Method: token:<name>`.
    pub fn name(self) -> &'static str {
        match self {
            TokenAuthenticator::SecurityKey => "security_key",
            TokenAuthenticator::WindowsHello => "windows_hello",
            TokenAuthenticator::Ipad => "ipad",
            TokenAuthenticator::MicrosoftAuthenticator => "microsoft_authenticator",
            TokenAuthenticator::Nhsmail => "nhsmail",
        }
    }

    /// By the gateway's spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::SHARES.iter().map(|(a, _)| *a).find(|a| a.name() == name)
    }

    /// The `amr` value Care Identity puts in the token.
    pub fn amr(self) -> &'static str {
        match self {
            TokenAuthenticator::SecurityKey => "FIDO2",
            TokenAuthenticator::WindowsHello => "WINDOWS_HELLO",
            TokenAuthenticator::Ipad => "IPAD",
            TokenAuthenticator::MicrosoftAuthenticator => "MS_AUTHENTICATOR",
            TokenAuthenticator::Nhsmail => "NHSMAIL",
        }
    }

    /// The authentication assurance level the token states.
    pub fn assurance_level(self) -> u8 {
        match self {
            TokenAuthenticator::SecurityKey | TokenAuthenticator::WindowsHello | TokenAuthenticator::Ipad => 3,
            TokenAuthenticator::MicrosoftAuthenticator | TokenAuthenticator::Nhsmail => 2,
        }
    }
}

/// How a user signs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A smartcard certificate in this state.
    Smartcard(CardState),
    /// A bearer token from this authenticator; no certificate.
    Token(TokenAuthenticator),
}

/// One role profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PopRole {
    /// Role profile id (URID), twelve digits.
    pub id: String,
    /// ODS code.
    pub org: String,
    /// Role code.
    pub role_code: &'static str,
    /// Granted activities.
    pub activities: &'static [&'static str],
}

/// Everything about user `i` that is not key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PopUser {
    /// Index in the population.
    pub index: u32,
    /// 12-digit Care Identity user id.
    pub user_id: String,
    /// Surname, as in the certificate.
    pub surname: &'static str,
    /// Forename, as in the certificate.
    pub forename: &'static str,
    /// Smartcard (with its state) or token.
    pub credential: Credential,
    /// Whether the user lacks the patient route's activity (their one profile is an admin
    /// clerk's).
    pub lacks_role: bool,
    /// Role profiles: one to three clinician profiles across organisations, or one admin clerk's.
    pub roles: Vec<PopRole>,
}

/// The per-population inputs of the derivation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Derivation {
    /// Users in the population.
    pub users: u32,
    /// The seed.
    pub seed: u64,
    /// Class shares.
    pub fractions: Fractions,
    /// How many organisations role profiles are spread across.
    pub organisations: u32,
}

impl Derivation {
    /// User `index` (which must be below `users`).
    pub fn user(&self, index: u32) -> PopUser {
        let i = u64::from(index);
        let u1 = frac(unit(splitmix64(self.seed)) + i as f64 * R2_A1);
        let u2 = frac(unit(splitmix64(self.seed ^ 0x5bd1_e995)) + i as f64 * R2_A2);
        let h = splitmix64(self.seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let credential = self.credential(u1);
        let lacks_role = u2 < self.fractions.no_role;
        let orgs = self.organisations.max(1);
        let count = match h % 10 {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        let first_org = ((h >> 8) % u64::from(orgs)) as u32;
        let roles = if lacks_role {
            vec![role(i, 0, first_org, ADMIN_CLERK_ROLE_CODE, ADMIN_CLERK_ACTIVITIES)]
        } else {
            // Distinct organisations: consecutive codes from a random start.
            (0..count.min(orgs as u64))
                .map(|k| role(i, k, (first_org + k as u32) % orgs, CLINICIAN_ROLE_CODE, CLINICIAN_ACTIVITIES))
                .collect()
        };
        PopUser {
            index,
            user_id: format!("{:012}", USER_ID_BASE + i),
            surname: SURNAMES[((h >> 24) % SURNAMES.len() as u64) as usize],
            forename: FORENAMES[((h >> 40) % FORENAMES.len() as u64) as usize],
            credential,
            lacks_role,
            roles,
        }
    }

    /// The credential for position `u` in [0, 1): token users first, then revoked, expired,
    /// expiring and valid cards.
    fn credential(&self, u: f64) -> Credential {
        let f = &self.fractions;
        if u < f.token {
            // Where in the token share, rescaled to [0, 1), picks the authenticator.
            let mut v = u / f.token;
            for (authenticator, share) in TokenAuthenticator::SHARES {
                if v < share {
                    return Credential::Token(authenticator);
                }
                v -= share;
            }
            return Credential::Token(TokenAuthenticator::Nhsmail);
        }
        let mut edge = f.token;
        for (share, state) in
            [(f.revoked, CardState::Revoked), (f.expired, CardState::Expired), (f.expiring, CardState::ExpiringSoon)]
        {
            edge += share;
            if u < edge {
                return Credential::Smartcard(state);
            }
        }
        Credential::Smartcard(CardState::Valid)
    }
}

/// The ODS code of organisation `k`: a GP-practice-shaped letter and five digits.
pub fn ods_code(k: u32) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPY";
    let letter = LETTERS[(k as usize) % LETTERS.len()] as char;
    format!("{letter}{:05}", 81_001 + k / LETTERS.len() as u32)
}

/// The 16-byte certificate serial of user `index`: a marker byte, the population's 7-byte
/// prefix, and the index. Distinct per user and per population, and an OCSP responder can read
/// the user back from it.
pub fn serial(prefix: &[u8; 7], index: u32) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[0] = SERIAL_MARKER;
    s[1..8].copy_from_slice(prefix);
    s[8..].copy_from_slice(&u64::from(index).to_be_bytes());
    s
}

/// The index a serial names, if it is one of this population's (leading zero octets ignored).
pub fn index_of_serial(prefix: &[u8; 7], serial: &[u8]) -> Option<u32> {
    let start = serial.iter().position(|b| *b != 0)?;
    let s = &serial[start..];
    if s.len() != 16 || s[0] != SERIAL_MARKER || &s[1..8] != prefix {
        return None;
    }
    let index = u64::from_be_bytes(s[8..16].try_into().ok()?);
    u32::try_from(index).ok()
}

/// First octet of every population serial: positive, non-zero, so the DER is always 16 octets.
const SERIAL_MARKER: u8 = 0x4c;

fn role(i: u64, k: u64, org: u32, role_code: &'static str, activities: &'static [&'static str]) -> PopRole {
    PopRole { id: format!("{:012}", ROLE_ID_BASE + i * 4 + k), org: ods_code(org), role_code, activities }
}

/// SplitMix64: a fast, well-mixed 64-bit hash of a counter.
pub(super) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The top 53 bits of `x` as a number in [0, 1).
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn frac(x: f64) -> f64 {
    x - x.floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derivation(users: u32) -> Derivation {
        Derivation { users, seed: 7, fractions: Fractions::default(), organisations: 50 }
    }

    #[test]
    fn classes_follow_their_fractions_even_in_a_small_population() {
        let d = Derivation {
            users: 200,
            seed: 42,
            fractions: Fractions { token: 0.2, revoked: 0.05, expired: 0.05, expiring: 0.05, no_role: 0.05 },
            organisations: 10,
        };
        let users: Vec<PopUser> = (0..200).map(|i| d.user(i)).collect();
        let count = |f: &dyn Fn(&PopUser) -> bool| users.iter().filter(|u| f(u)).count();
        let tokens = count(&|u| matches!(u.credential, Credential::Token(_)));
        assert!((36..=44).contains(&tokens), "{tokens} token users");
        for state in [CardState::Revoked, CardState::Expired, CardState::ExpiringSoon] {
            let n = count(&|u| u.credential == Credential::Smartcard(state));
            assert!((8..=12).contains(&n), "{state:?}: {n}");
        }
        let no_role = count(&|u| u.lacks_role);
        assert!((8..=12).contains(&no_role), "no role: {no_role}");
    }

    #[test]
    fn users_are_distinct_and_stable() {
        let d = derivation(1000);
        assert_eq!(d.user(17), d.user(17));
        let ids: std::collections::HashSet<String> = (0..1000).map(|i| d.user(i).user_id).collect();
        assert_eq!(ids.len(), 1000);
        let roles: std::collections::HashSet<String> =
            (0..1000).flat_map(|i| d.user(i).roles.into_iter().map(|r| r.id)).collect();
        assert!(roles.len() >= 1000);
        assert_eq!(d.user(3).user_id, "700000000003");
    }

    #[test]
    fn a_users_role_profiles_are_in_distinct_organisations() {
        let d = derivation(500);
        for i in 0..500 {
            let user = d.user(i);
            let orgs: std::collections::HashSet<&str> = user.roles.iter().map(|r| r.org.as_str()).collect();
            assert_eq!(orgs.len(), user.roles.len(), "user {i}");
            assert_eq!(user.lacks_role, user.roles[0].role_code == ADMIN_CLERK_ROLE_CODE);
        }
    }

    #[test]
    fn serial_round_trips_and_foreign_serials_are_not_ours() {
        let prefix = [1, 2, 3, 4, 5, 6, 7];
        let s = serial(&prefix, 123_456);
        assert_eq!(index_of_serial(&prefix, &s), Some(123_456));
        let mut padded = vec![0u8];
        padded.extend_from_slice(&s);
        assert_eq!(index_of_serial(&prefix, &padded), Some(123_456));
        assert_eq!(index_of_serial(&[9; 7], &s), None);
        assert_eq!(index_of_serial(&prefix, &s[..15]), None);
    }

    #[test]
    fn fractions_are_checked() {
        assert!(Fractions::default().validated().is_ok());
        let bad = Fractions { token: 0.9, revoked: 0.2, ..Fractions::default() };
        assert!(matches!(bad.validated(), Err(FractionsError::Oversubscribed { .. })));
        let nan = Fractions { no_role: f64::NAN, ..Fractions::default() };
        assert!(matches!(nan.validated(), Err(FractionsError::OutOfRange { name: "no_role", .. })));
    }

    #[test]
    fn ods_codes_are_distinct() {
        let codes: std::collections::HashSet<String> = (0..1000).map(ods_code).collect();
        assert_eq!(codes.len(), 1000);
        assert_eq!(ods_code(0), "A81001");
    }
}
