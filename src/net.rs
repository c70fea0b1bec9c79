//! The socket options camstream sets that the standard library does not, and `poll`: every
//! `unsafe` around sockets, in one small module.

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

/// Reads at most `max` bytes from `stream` onto the end of `buf`, into its capacity as it is:
/// the kernel writes the bytes, so a new buffer is not zeroed first (6 MB a raw 1080p frame).
/// How many came; 0 at the end of the stream.
pub fn recv_appending(stream: &TcpStream, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let spare = &mut buf.spare_capacity_mut()[..max];
    // SAFETY: recv writes at most `spare.len()` bytes into `spare`, memory `buf` owns.
    let got = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            spare.len(),
            0,
        )
    };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the `got` bytes after the length were just written by recv.
    unsafe { buf.set_len(buf.len() + got) };
    Ok(got)
}

/// Bytes of a viewer's frames its socket may hold unsent before a write waits
/// (`TCP_NOTSENT_LOWAT`): what is in flight is bounded by the viewer's window, and what waits
/// beyond it waits in the viewer's slot, where it can be skipped, not in the kernel, where it
/// cannot. Big enough that a raw 1080p frame goes in a few wake-ups on a LAN.
pub const VIEWER_UNSENT_LIMIT: usize = 1 << 20;

/// Sets `TCP_NOTSENT_LOWAT`: a write waits while `bytes` or more of what was written before
/// are still unsent, so frames queue where we can still skip them.
pub fn set_unsent_limit(tcp: &impl AsFd, bytes: usize) -> io::Result<()> {
    set_int(
        tcp.as_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_NOTSENT_LOWAT,
        bytes,
    )
}

/// Sets `SO_RCVLOWAT`: a read waits until `bytes` have arrived (or the message's end).
pub fn set_receive_low_water(tcp: &impl AsFd, bytes: usize) -> io::Result<()> {
    set_int(tcp.as_fd(), libc::SOL_SOCKET, libc::SO_RCVLOWAT, bytes)
}

/// Sets the socket's TCP congestion control (`TCP_CONGESTION`): a listener's connections
/// inherit it. The kernel refuses one it lacks, and, for a process without `CAP_NET_ADMIN`, one
/// missing from `net.ipv4.tcp_allowed_congestion_control`.
pub fn set_congestion_control(socket: &impl AsFd, name: &str) -> io::Result<()> {
    socket2::SockRef::from(socket).set_tcp_congestion(name.as_bytes())
}

/// The congestion controls this kernel has, as it lists them.
pub fn available_congestion_controls() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .map_or_else(|_| "unknown".to_owned(), |list| list.trim().to_owned())
}

/// The socket's TCP congestion control.
pub fn congestion_control(socket: &impl AsFd) -> io::Result<String> {
    let name = socket2::SockRef::from(socket).tcp_congestion()?;
    let name = name.split(|b| *b == 0).next().unwrap_or_default();
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// Waits until one of `sockets` has something to read (or is closed), for at most `timeout`
/// (`None`: for ever); returns whether one has.
pub fn wait_readable(sockets: &[BorrowedFd<'_>], timeout: Option<Duration>) -> bool {
    let mut fds: Vec<libc::pollfd> = (sockets.iter())
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let timeout = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX)
    });
    // SAFETY: `fds` holds valid pollfd entries (their descriptors borrowed for the call) and
    // outlives it; the count is its length.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    ready > 0
}

fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: usize,
) -> io::Result<()> {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid descriptor (borrowed for the call) and a pointer to an int that outlives
    // it, with its size.
    let result = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match result {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Sets up a viewer's connection: its unsent bytes limited ([`VIEWER_UNSENT_LIMIT`]).
pub fn tune_viewer(tcp: &TcpStream) -> io::Result<()> {
    set_unsent_limit(tcp, VIEWER_UNSENT_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_listeners_congestion_control_is_its_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // Reno is in every kernel and allowed to everyone.
        set_congestion_control(&listener, "reno").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(congestion_control(&accepted).unwrap(), "reno");
        assert!(congestion_control(&client).is_ok());
        let err = set_congestion_control(&listener, "no-such-algorithm").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn readable_is_told_within_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fds = [listener.as_fd()];
        assert!(!wait_readable(&fds, Some(Duration::from_millis(10))));
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(wait_readable(&fds, Some(Duration::from_secs(5))));
        let (accepted, _) = listener.accept().unwrap();
        tune_viewer(&accepted).unwrap();
    }
}
