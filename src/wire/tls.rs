//! The web side's crypto, on bytes only: the sender's TLS identity (a certificate the user gave,
//! or a self-signed one made here with rcgen), its SHA-256 fingerprint as browsers show it, the
//! rustls server configuration (aws-lc-rs, the same crypto library as pairing), and the session
//! tokens a browser gets for a right pairing code.

use anyhow::{anyhow, bail, Context, Result};
use aws_lc_rs::{digest, hmac};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::sync::Arc;

/// How long a browser's session lasts.
pub const SESSION_SECONDS: u64 = 12 * 60 * 60;
/// Bytes of a session token's tag.
const TAG_LEN: usize = 16;

/// A certificate chain and its private key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A self-signed identity as the PEM files that keep it.
pub struct SelfSigned {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl Identity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem(certificate: &[u8], key: &[u8]) -> Result<Identity> {
        let chain = CertificateDer::pem_slice_iter(certificate)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("reading the certificate: {e}"))?;
        if chain.is_empty() {
            bail!("the certificate file holds no PEM certificate");
        }
        let key =
            PrivateKeyDer::from_pem_slice(key).map_err(|e| anyhow!("reading the key: {e}"))?;
        Ok(Identity { chain, key })
    }

    /// Makes a new self-signed certificate (ECDSA P-256) for `names` (host names and IP
    /// addresses).
    pub fn self_signed(names: Vec<String>, common_name: &str) -> Result<SelfSigned> {
        let key = rcgen::KeyPair::generate().context("making a key")?;
        let mut params = rcgen::CertificateParams::new(names).context("naming the certificate")?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let certificate = params
            .self_signed(&key)
            .context("signing the certificate")?;
        Ok(SelfSigned {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The leaf certificate's SHA-256 fingerprint, `AB:CD:…`, as browsers' certificate viewers
    /// show it.
    pub fn fingerprint(&self) -> String {
        let leaf = self.chain.first().map_or(&[][..], |c| c.as_ref());
        let digest = digest::digest(&digest::SHA256, leaf);
        let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        hex.join(":")
    }

    /// A secret for session tokens, derived from the private key: it lasts as long as the
    /// identity, and no one without the key can compute it.
    pub fn session_salt(&self) -> Vec<u8> {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(b"camstream session salt\0");
        context.update(self.key.secret_der());
        context.finish().as_ref().to_vec()
    }

    /// The TLS server configuration for this identity: TLS 1.2 and 1.3, HTTP/1.1 only.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("choosing TLS versions")?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .context("the certificate and key do not go together")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Issues and checks browsers' session tokens: `expiry || HMAC-SHA256(expiry)` in hex, keyed by
/// the pairing code and a secret salt. Nothing is stored per session; a new code voids every
/// token, and a stolen token cannot be tested against guessed codes without the salt.
pub struct SessionKeys {
    key: hmac::Key,
}

impl SessionKeys {
    pub fn new(salt: &[u8], code: &str) -> SessionKeys {
        let salted = hmac::Key::new(hmac::HMAC_SHA256, salt);
        let derived = hmac::sign(&salted, code.as_bytes());
        SessionKeys {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// A token valid for [`SESSION_SECONDS`] from `now_unix`.
    pub fn issue(&self, now_unix: u64) -> String {
        let expiry = (now_unix + SESSION_SECONDS).to_be_bytes();
        let tag = hmac::sign(&self.key, &expiry);
        data_encoding::HEXLOWER.encode(&[&expiry[..], &tag.as_ref()[..TAG_LEN]].concat())
    }

    /// Whether `token` was issued here and has not expired.
    pub fn check(&self, token: &str, now_unix: u64) -> bool {
        let Ok(bytes) = data_encoding::HEXLOWER.decode(token.as_bytes()) else {
            return false;
        };
        let Some((expiry, tag)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        let expected = hmac::sign(&self.key, expiry);
        let matches = tag.len() == TAG_LEN
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                tag,
                &expected.as_ref()[..TAG_LEN],
            )
            .is_ok();
        matches && u64::from_be_bytes(*expiry) > now_unix
    }
}

/// Whether a code someone typed is the pairing code, compared in constant time.
pub fn code_matches(typed: &str, code: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(typed.as_bytes(), code.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_identity_serves_tls_and_has_a_fingerprint() {
        let made =
            Identity::self_signed(vec!["localhost".into(), "127.0.0.1".into()], "test").unwrap();
        let identity =
            Identity::from_pem(made.certificate_pem.as_bytes(), made.key_pem.as_bytes()).unwrap();
        identity.server_config().unwrap();
        let fingerprint = identity.fingerprint();
        assert_eq!(fingerprint.len(), 32 * 3 - 1);
        assert!(fingerprint
            .chars()
            .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert!(Identity::from_pem(b"", made.key_pem.as_bytes())
            .err()
            .unwrap()
            .to_string()
            .contains("no PEM certificate"));
    }

    #[test]
    fn session_tokens_hold_for_their_code_until_they_expire() {
        let keys = SessionKeys::new(b"salt", "12-droll-crow");
        let token = keys.issue(1000);
        assert!(keys.check(&token, 1000 + SESSION_SECONDS - 1));
        assert!(!keys.check(&token, 1000 + SESSION_SECONDS));
        assert!(!SessionKeys::new(b"salt", "13-droll-crow").check(&token, 1000));
        assert!(!SessionKeys::new(b"other", "12-droll-crow").check(&token, 1000));
        let mut forged = token.clone().into_bytes();
        forged[3] = if forged[3] == b'f' { b'e' } else { b'f' };
        assert!(!keys.check(std::str::from_utf8(&forged).unwrap(), 1000));
        assert!(!keys.check("zz", 1000));
    }
}
