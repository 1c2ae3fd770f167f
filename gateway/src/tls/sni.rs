//! Server certificate selection: by SNI name (exact, then `*.` wildcard), then by what the client
//! can verify (an ECDSA and an RSA certificate may serve the same name), else the default.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use spinegate_config::ServerCertificate;

use crate::material::{self, MaterialError};

/// The certificates of one listener.
#[derive(Debug)]
pub struct SniResolver {
    by_name: HashMap<String, Vec<Arc<CertifiedKey>>>,
    default: Vec<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Loads and checks every configured certificate and key.
    pub fn load(certs: &[ServerCertificate], provider: &CryptoProvider) -> Result<Self, MaterialError> {
        let mut by_name: HashMap<String, Vec<Arc<CertifiedKey>>> = HashMap::new();
        let mut default = Vec::new();
        for c in certs {
            let key = material::certified_key(&c.cert, &c.key, provider)?;
            let add = |list: &mut Vec<Arc<CertifiedKey>>, name: &str| {
                let algorithm = key.key.algorithm();
                if list.iter().any(|k| k.key.algorithm() == algorithm) {
                    return Err(MaterialError::DuplicateCertificate {
                        path: c.cert.clone(),
                        name: name.to_owned(),
                        algorithm,
                    });
                }
                list.push(Arc::clone(&key));
                Ok(())
            };
            if c.server_names.is_empty() {
                add(&mut default, "the default")?;
            }
            for name in &c.server_names {
                add(by_name.entry(name.clone()).or_default(), name)?;
            }
        }
        Ok(Self { by_name, default })
    }

    fn candidates(&self, sni: Option<&str>) -> &[Arc<CertifiedKey>] {
        let Some(name) = sni else { return &self.default };
        // rustls hands SNI over lower-cased.
        if let Some(found) = self.by_name.get(name) {
            return found;
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(found) = self.by_name.get(&format!("*.{parent}"))
        {
            return found;
        }
        &self.default
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let candidates = self.candidates(hello.server_name());
        let schemes = hello.signature_schemes();
        candidates.iter().find(|k| k.key.choose_scheme(schemes).is_some()).or_else(|| candidates.first()).cloned()
    }
}
