//! Every failure that ends a request becomes a [`Reason`] here, by a `From` impl: certificate
//! failures, a connection's refused certificate, and upstream exchange failures. (Bearer-token
//! refusals map in `spinegate_token` and unusable request targets in `spinegate_canonical`: the
//! orphan rule puts the impl beside the error type.) The reasons themselves — codes, statuses and
//! the rest — are one table in `spinegate_vocab::reason`; how a reason is answered is
//! `spinegate_guidance::response`.

use crate::peer::PeerRefusal;
use crate::proxy::ForwardError;
use crate::trust::CertFailure;

pub use spinegate_vocab::Reason;

/// A client certificate that failed its checks.
impl From<&CertFailure> for Reason {
    fn from(failure: &CertFailure) -> Self {
        match failure {
            CertFailure::Expired => Reason::CertificateExpired,
            CertFailure::NotYetValid => Reason::CertificateNotYetValid,
            CertFailure::Revoked => Reason::CertificateRevoked,
            CertFailure::ChainTooLarge { .. }
            | CertFailure::ChainTooLong { .. }
            | CertFailure::Malformed(_)
            | CertFailure::UnknownCa
            | CertFailure::WrongPurpose
            | CertFailure::BadSignature(_)
            | CertFailure::NotAUser(_)
            | CertFailure::WeakKey(_)
            | CertFailure::Invalid(_) => Reason::CertificateInvalid,
        }
    }
}

/// A connection's certificate refused on a request.
impl From<&PeerRefusal> for Reason {
    fn from(refusal: &PeerRefusal) -> Self {
        match refusal {
            PeerRefusal::Certificate(failure) => Reason::from(failure),
            PeerRefusal::RevocationUnknown => Reason::RevocationUnavailable,
        }
    }
}

/// An upstream exchange that failed: the upstream's doing, or the client's (its body too large,
/// too slow, or broken off — nobody is left to read that answer; the status is for the log).
impl From<&ForwardError> for Reason {
    fn from(e: &ForwardError) -> Self {
        match e {
            ForwardError::Timeout(_) => Reason::UpstreamTimeout,
            ForwardError::Unavailable(_) => Reason::UpstreamUnavailable,
            ForwardError::BodyTooLarge => Reason::RequestTooLarge,
            ForwardError::BodyTooSlow | ForwardError::ClientAborted => Reason::RequestTimeout,
        }
    }
}
