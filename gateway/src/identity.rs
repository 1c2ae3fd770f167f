//! Who a certificate says its holder is: the 12-digit Care Identity user id, read by the issuing
//! CA's [`IdentityRule`].

use std::sync::Arc;

use spinegate_config::{IdentityRule, UserIdSource};
use spinegate_revocation::issuer::Subject;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{OID_X509_COMMON_NAME, OID_X509_SERIALNUMBER, Oid};
use x509_parser::x509::X509Name;

pub use spinegate_vocab::UserId;

/// The verified identity of a smartcard certificate's holder, with what per-request checks need.
#[derive(Clone, Debug)]
pub struct CertIdentity {
    /// The user.
    pub user_id: UserId,
    /// The issuing CA's configured name (`"default"` when it has no `[[client_auth.issuer]]`).
    pub issuer_name: Arc<str>,
    /// The certificate as revocation sources know it: issuer, serial, OCSP and CRL locations.
    pub revocation: Arc<Subject>,
    /// The intermediate CAs of the verified path, leaf's issuer first, when
    /// `revocation_depth = "chain"`; empty otherwise.
    pub ca_revocation: Arc<[Arc<Subject>]>,
    /// The leaf's notAfter, seconds since the Unix epoch.
    pub not_after: u64,
    /// When the verified path stops being valid: the earliest notAfter of the leaf and its
    /// intermediate CAs. Verified chains are trusted until then and no longer.
    pub path_not_after: u64,
    /// The same instant in RFC 3339, computed once for the expiry warning.
    pub not_after_rfc3339: Arc<str>,
}

/// Why a certificate carries no usable identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The subject lacks the attribute the rule reads, or has it more than once.
    #[error("subject has {count} {attribute} attributes; exactly one is required")]
    AttributeCount {
        /// Which attribute.
        attribute: &'static str,
        /// How many were found.
        count: usize,
    },
    /// The attribute is there but holds no 12-digit user id.
    #[error("{attribute} does not carry a 12-digit user id")]
    NotAUserId {
        /// Which attribute.
        attribute: &'static str,
    },
    /// A required OU or O is missing.
    #[error("subject lacks the required {attribute}={expected}")]
    SubjectMismatch {
        /// `OU` or `O`.
        attribute: &'static str,
        /// The required value.
        expected: String,
    },
}

/// Reads the user id from `leaf` by `rule`.
pub fn user_id(leaf: &X509Certificate<'_>, rule: &IdentityRule) -> Result<UserId, IdentityError> {
    let subject = leaf.subject();
    if let Some(ou) = &rule.require_ou {
        require(subject.iter_organizational_unit(), "OU", ou)?;
    }
    if let Some(o) = &rule.require_o {
        require(subject.iter_organization(), "O", o)?;
    }
    match &rule.user_id {
        UserIdSource::SubjectCnPrefix { separator } => {
            let cn = single(subject, &OID_X509_COMMON_NAME, "CN")?;
            let prefix = cn.split(*separator).next().unwrap_or(&cn);
            UserId::parse(prefix).ok_or(IdentityError::NotAUserId { attribute: "CN" })
        }
        UserIdSource::SubjectSerialNumber => {
            let value = single(subject, &OID_X509_SERIALNUMBER, "serialNumber")?;
            UserId::parse(&value).ok_or(IdentityError::NotAUserId { attribute: "serialNumber" })
        }
        UserIdSource::SubjectUid => {
            // 0.9.2342.19200300.100.1.1
            let uid = Oid::from(&[0, 9, 2342, 19_200_300, 100, 1, 1]).expect("the UID OID is well-formed");
            let value = single(subject, &uid, "UID")?;
            UserId::parse(&value).ok_or(IdentityError::NotAUserId { attribute: "UID" })
        }
    }
}

/// The one value of `oid` in `name`, owned (the verification path only, so the copy is cheap
/// relative to path validation).
fn single(name: &X509Name<'_>, oid: &Oid<'_>, attribute: &'static str) -> Result<String, IdentityError> {
    let mut values = name.iter_by_oid(oid);
    let (Some(first), None) = (values.next(), values.next()) else {
        return Err(IdentityError::AttributeCount { attribute, count: name.iter_by_oid(oid).count() });
    };
    first.as_str().map(str::to_owned).map_err(|_| IdentityError::NotAUserId { attribute })
}

fn require<'a>(
    mut values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
    attribute: &'static str,
    expected: &str,
) -> Result<(), IdentityError> {
    if values.any(|v| v.as_str().is_ok_and(|s| s.eq_ignore_ascii_case(expected))) {
        Ok(())
    } else {
        Err(IdentityError::SubjectMismatch { attribute, expected: expected.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_is_exactly_twelve_digits() {
        assert!(UserId::parse("555000000001").is_some());
        for bad in ["55500000000", "5550000000012", "55500000000a", "", "５55000000001"] {
            assert!(UserId::parse(bad).is_none(), "{bad}");
        }
    }
}
