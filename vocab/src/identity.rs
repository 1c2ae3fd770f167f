//! Who and where: the Care Identity user id, and the shapes of ODS organisation codes, national
//! RBAC activity codes and job roles (DESIGN §3).

use std::fmt;

/// A Care Identity user id: exactly twelve ASCII digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId([u8; 12]);

impl UserId {
    /// Parses twelve ASCII digits.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; 12] = s.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_digit).then_some(Self(bytes))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).expect("user ids are ASCII digits")
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.as_str())
    }
}

/// Whether `code` is shaped like an ODS organisation code (`Y12345`, `A9A5A`, `RX1`): 3 to 10
/// letters and digits (compared without case).
pub fn is_ods_code(code: &str) -> bool {
    (3..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether `code` is shaped like a national RBAC activity code (`B0370` view SCR, `B0820` view
/// demographics …): `B` and four digits.
pub fn is_activity_code(code: &str) -> bool {
    code.len() == 5 && code.starts_with('B') && code[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The job role of a role code: its last `R…` segment (`S8000:G8000:R8000` → `R8000`).
pub fn job_role(role_code: &str) -> &str {
    role_code.rsplit(':').find(|s| s.starts_with('R')).unwrap_or(role_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_twelve_digits() {
        assert_eq!(UserId::parse("555000000001").unwrap().as_str(), "555000000001");
        for bad in ["55500000000", "5550000000011", "55500000000a", "555000000001 ", ""] {
            assert!(UserId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn codes_are_checked_for_shape() {
        assert!(is_ods_code("RX1") && is_ods_code("Y12345"));
        assert!(!is_ods_code("RX") && !is_ods_code("RX-1"));
        assert!(is_activity_code("B0370"));
        assert!(!is_activity_code("B037") && !is_activity_code("X0370"));
        assert_eq!(job_role("S8000:G8000:R8000"), "R8000");
        assert_eq!(job_role("R8008"), "R8008");
    }
}
