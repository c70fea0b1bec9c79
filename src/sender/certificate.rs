//! The files behind the web side's TLS: the user's own certificate (`--tls-cert`, `--tls-key`),
//! or a self-signed one made at the first start and kept in the config folder, so that the
//! exception a browser's user accepted for it holds across restarts.

use crate::wire::tls::{Identity, SessionKeys};
use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the sender's TLS identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Made here and kept in this folder; `None` keeps it in memory (a new one every start).
    SelfSigned { folder: Option<PathBuf> },
    /// The user's own PEM files.
    Files { certificate: PathBuf, key: PathBuf },
}

impl TlsSource {
    /// `$XDG_CONFIG_HOME/camstream`, or `~/.config/camstream`.
    pub fn default_folder() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
        Some(base.join("camstream"))
    }
}

/// What the web side serves TLS with, and checks sessions against.
pub(super) struct WebKeys {
    pub tls: Arc<rustls::ServerConfig>,
    pub fingerprint: String,
    pub sessions: SessionKeys,
    /// The pairing code a browser logs in with.
    pub code: String,
}

/// The self-signed certificate and its key, in one file so that it is never read half-made.
const IDENTITY_FILE: &str = "web-identity.pem";

/// Loads or makes the identity, with session keys for `code`.
pub(super) fn load(source: &TlsSource, code: &str) -> Result<WebKeys> {
    let identity = match source {
        TlsSource::Files { certificate, key } => {
            let read =
                |path: &Path| fs::read(path).with_context(|| format!("reading {}", path.display()));
            Identity::from_pem(&read(certificate)?, &read(key)?)
                .with_context(|| format!("using {} (--tls-cert)", certificate.display()))?
        }
        TlsSource::SelfSigned { folder } => self_signed(folder.as_deref())?,
    };
    Ok(WebKeys {
        tls: identity.server_config()?,
        fingerprint: identity.fingerprint(),
        sessions: SessionKeys::new(&identity.session_salt(), code),
        code: code.to_owned(),
    })
}

/// The self-signed identity kept in `folder`, made there if it is not yet.
fn self_signed(folder: Option<&Path>) -> Result<Identity> {
    let path = folder.map(|folder| folder.join(IDENTITY_FILE));
    if let Some(kept) = path.as_deref().and_then(|path| fs::read(path).ok()) {
        return Identity::from_pem(&kept, &kept).with_context(|| {
            format!(
                "using {} (delete it to make a new one)",
                path.as_deref().unwrap_or(Path::new("")).display()
            )
        });
    }
    let host = fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !host.is_empty() {
        names.push(host.to_owned());
    }
    names.extend(crate::cli::lan_addresses().iter().map(|ip| ip.to_string()));
    let made = Identity::self_signed(names, &format!("camstream on {host}"))?;
    let pem = format!("{}{}", made.certificate_pem, made.key_pem);
    if let (Some(folder), Some(path)) = (folder, &path) {
        match keep(folder, path, pem.as_bytes()) {
            Ok(()) => log::info!(
                "made a self-signed certificate for the web page, kept in {}",
                path.display()
            ),
            Err(e) => log::warn!(
                "could not keep the new certificate in {}: {e}; browsers will warn again after a restart",
                path.display()
            ),
        }
    }
    Identity::from_pem(pem.as_bytes(), pem.as_bytes())
}

/// Writes `bytes` to `path`, readable by its owner only, all at once: through a file of its
/// own that is then renamed, so a sender starting meanwhile never reads half of it.
fn keep(folder: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(folder)?;
    let partial = folder.join(format!(".{IDENTITY_FILE}.{}", std::process::id()));
    let _ = fs::remove_file(&partial);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?
        .write_all(bytes)?;
    // Two senders making one at once: the first one kept wins, so both serve the same.
    match fs::hard_link(&partial, path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&partial);
            Err(e)
        }
        _ => fs::remove_file(&partial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_certificate_is_kept_and_used_again() {
        let folder = std::env::temp_dir().join(format!("camstream-cert-{}", std::process::id()));
        let _ = fs::remove_dir_all(&folder);
        let source = TlsSource::SelfSigned {
            folder: Some(folder.clone()),
        };
        let first = load(&source, "1-a-b").unwrap();
        let second = load(&source, "1-a-b").unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        let token = first.sessions.issue(5);
        assert!(
            second.sessions.check(&token, 6),
            "sessions survive a restart"
        );
        use std::os::unix::fs::PermissionsExt;
        let kept = folder.join(IDENTITY_FILE);
        assert_eq!(
            fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let files = TlsSource::Files {
            certificate: kept.clone(),
            key: kept,
        };
        assert_eq!(
            load(&files, "1-a-b").unwrap().fingerprint,
            first.fingerprint
        );
        fs::remove_dir_all(&folder).unwrap();
    }
}
