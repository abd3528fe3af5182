//! The TLS client settings that Sightline's HTTP clients share: the health checks' HTTP probe, the
//! scraper and the alert receivers.
//!
//! - rustls with the ring provider, chosen here rather than installed as the process default, which
//!   belongs to the application;
//! - server certificates verified against the platform's roots, loaded once per process on the first
//!   handshake (so that plain-`http` clients work on a host without CA certificates), or not verified at
//!   all when the user asks (`insecure_skip_verify`, a check's `accept_invalid_certs`);
//! - handshake signatures verified either way.
//!
//! ```
//! let config = sightline_tls::client_config(true).expect("ring supports the default protocol versions");
//! assert!(config.alpn_protocols.is_empty());
//! ```

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The ring crypto provider every client uses, built once.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// A client configuration that verifies server certificates against the platform's roots when `verify`
/// is true and accepts any certificate otherwise, with no client certificate. Callers set ALPN.
pub fn client_config(verify: bool) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    Ok(rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier { provider, verify }))
        .with_no_client_auth())
}

/// Verifies server certificates with the platform's roots (loaded on the first handshake), or accepts
/// any; handshake signatures are verified either way.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    verify: bool,
}

// === impl Verifier ===

impl Verifier {
    fn platform(&self) -> Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error> {
        static PLATFORM: OnceLock<Arc<rustls_platform_verifier::Verifier>> = OnceLock::new();
        if let Some(verifier) = PLATFORM.get() {
            return Ok(verifier.clone());
        }
        // A failure (no CA certificates yet) is not cached: the next handshake tries again.
        let verifier = Arc::new(rustls_platform_verifier::Verifier::new(self.provider.clone())?);
        Ok(PLATFORM.get_or_init(|| verifier).clone())
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.verify {
            return Ok(ServerCertVerified::assertion());
        }
        self.platform()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a certificate: only a verifier that checks nothing accepts it.
    const GARBAGE: &[u8] = b"not a certificate";

    fn check(verify: bool) -> Result<ServerCertVerified, rustls::Error> {
        let verifier = Verifier { provider: provider(), verify };
        let name = ServerName::try_from("example.invalid").expect("a valid name");
        verifier.verify_server_cert(&CertificateDer::from(GARBAGE), &[], &name, &[], UnixTime::now())
    }

    #[test]
    fn verification_rejects_what_the_opt_out_accepts() {
        assert!(check(false).is_ok(), "insecure_skip_verify accepts any certificate");
        assert!(check(true).is_err(), "a certificate that does not parse never verifies");
    }

    #[test]
    fn the_config_uses_the_shared_provider_and_verifies_signatures() {
        let config = client_config(false).expect("a config");
        assert!(Arc::ptr_eq(config.crypto_provider(), &provider()));
        assert!(!Verifier { provider: provider(), verify: false }.supported_verify_schemes().is_empty());
    }
}
