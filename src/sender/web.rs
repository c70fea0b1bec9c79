//! Browsers and other HTTP clients that reach the sender's port. The sender serves no page for
//! them yet: it says so in plain words, and how to watch, instead of resetting the connection.

use crate::wire::handshake::HANDSHAKE_TIMEOUT;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

/// The most of a request's head that is read.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Reads the request's head and answers `501 Not Implemented` with how to watch the stream.
pub fn turn_away(stream: &TcpStream) -> Result<()> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    read_request_head(stream).context("reading its request")?;
    let here = stream.local_addr()?;
    let body = format!(
        "This is a camstream sender. It streams to camstream's receiver:\n\n    \
         receiver --connect {here}\n\n(with the pairing code the sender shows, unless it runs \
         --insecure). It serves no page for browsers yet.\n"
    );
    let mut writer = stream;
    write!(
        writer,
        "HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .context("answering it")?;
    // Already closed is fine.
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

/// Reads up to the blank line that ends a request's head.
fn read_request_head(mut stream: &TcpStream) -> Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD {
            bail!("its request's head is over {MAX_REQUEST_HEAD} bytes");
        }
        match stream.read(&mut chunk)? {
            0 => bail!("it closed the connection in the middle of its request"),
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(())
}
