//! Running under systemd: the sender tells the service manager it is listening (`Type=notify`,
//! `sd_notify`'s protocol: one datagram of `KEY=value` lines to the socket in `NOTIFY_SOCKET`),
//! so `systemctl start` returns once viewers can connect and units ordered after it start then.
//! Written here with std's Unix sockets rather than libsystemd: the protocol is one datagram.

use anyhow::{Context, Result};
use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `READY=1\nSTATUS=listening on 0.0.0.0:9999`) to the service manager.
/// Returns whether there was one to tell: `false` when `NOTIFY_SOCKET` is not set, as when run
/// from a terminal.
pub fn notify(state: &str) -> Result<bool> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let name = socket.to_string_lossy();
    let address = address(&socket).with_context(|| format!("invalid NOTIFY_SOCKET \"{name}\""))?;
    UnixDatagram::unbound()
        .and_then(|datagram| datagram.send_to_addr(state.as_bytes(), &address))
        .with_context(|| format!("notifying systemd at {name}"))?;
    Ok(true)
}

/// A path, or with a leading `@` the name of a socket in the abstract namespace (Linux's
/// sockets that have no file; systemd hands out both kinds).
fn address(socket: &OsStr) -> std::io::Result<SocketAddr> {
    match socket.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(socket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_at_names_an_abstract_socket() {
        let name = format!("camstream-notify-{}", std::process::id());
        let listening =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        let abstract_name = address(OsStr::new(&format!("@{name}"))).unwrap();
        assert_eq!(abstract_name.as_abstract_name(), Some(name.as_bytes()));
        sender.send_to_addr(b"READY=1", &abstract_name).unwrap();
        let mut buffer = [0u8; 16];
        let got = listening.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..got], b"READY=1");
        let path = address(OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
    }
}
