//! The rustls client-certificate verifier: chain cache first, then webpki path validation to the
//! configured anchors, and a refusal of certificates already known to be revoked. Every outcome is
//! counted by reason.
//!
//! Under `certificate_problems = "explain"` a chain that reaches a trusted anchor but is expired,
//! not yet valid or revoked completes the handshake (still counted and logged as refused): the
//! per-connection check ([`crate::peer::Peer::handshake_refusal`]) then refuses every request on
//! the connection with a page that says what to do. Nothing else changes: unknown CAs, bad
//! signatures, wrong purposes and malformed chains fail the handshake, and such chains are never
//! cached.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use spinegate_config::{CertificateProblems, ClientCertificatePolicy};
use spinegate_revocation::Revocation;

use crate::metrics as m;
use crate::peer::{self, Cache};
use crate::trust::TrustStore;

/// Verifies client certificates for one listener.
#[derive(Debug)]
pub struct ClientVerifier {
    trust: Arc<TrustStore>,
    cache: Arc<Cache>,
    revocation: Arc<Revocation>,
    policy: ClientCertificatePolicy,
    provider: Arc<CryptoProvider>,
    listener: Arc<str>,
    problems: CertificateProblems,
}

impl ClientVerifier {
    /// A verifier over `trust`, remembering results in `cache`, that fails the handshake of every
    /// refused certificate (see [`ClientVerifier::certificate_problems`]).
    pub fn new(
        trust: Arc<TrustStore>,
        cache: Arc<Cache>,
        revocation: Arc<Revocation>,
        policy: ClientCertificatePolicy,
        provider: Arc<CryptoProvider>,
        listener: Arc<str>,
    ) -> Self {
        Self { trust, cache, revocation, policy, provider, listener, problems: CertificateProblems::Alert }
    }

    /// Sets what a trusted but expired, not yet valid or revoked certificate gets.
    #[must_use]
    pub fn certificate_problems(mut self, problems: CertificateProblems) -> Self {
        self.problems = problems;
        self
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        match self.policy {
            ClientCertificatePolicy::Require => true,
            ClientCertificatePolicy::Request => false,
        }
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.trust.root_hints()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let outcome = peer::resolve(&self.trust, &self.cache, end_entity, intermediates, now)
            .and_then(|entry| peer::refuse_if_revoked(&entry, &self.revocation, now).map(|()| entry));
        match outcome {
            Ok(entry) => {
                metrics::counter!(m::CLIENT_CERT_VERIFICATIONS, "result" => "ok").increment(1);
                tracing::debug!(listener = %self.listener, user_id = %entry.value().user_id, "client certificate accepted");
                Ok(ClientCertVerified::assertion())
            }
            Err(failure) => {
                metrics::counter!(m::CLIENT_CERT_VERIFICATIONS, "result" => failure.label()).increment(1);
                if self.problems == CertificateProblems::Explain
                    && peer::explainable(&self.trust, end_entity, intermediates, now, &failure)
                {
                    tracing::info!(
                        listener = %self.listener,
                        reason = failure.label(),
                        "client certificate refused; the handshake completes so that each request is told why"
                    );
                    return Ok(ClientCertVerified::assertion());
                }
                tracing::info!(
                    listener = %self.listener,
                    reason = failure.label(),
                    detail = %failure,
                    "client certificate refused at handshake"
                );
                Err(failure.to_rustls())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
