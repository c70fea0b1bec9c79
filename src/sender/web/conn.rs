//! A web connection (in the clear or through TLS), reading its request and writing whole
//! responses, and how it ended.

use crate::wire::http::{parse_request, response_head, Request};
use anyhow::Result;
use rustls::{ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection, in the clear or through TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.read(buf),
            Conn::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.write(buf),
            Conn::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.flush(),
            Conn::Tls(tls) => tls.flush(),
        }
    }
}

/// How a web connection ended, for the log.
pub enum Served {
    /// A page, a login, a snapshot: nothing worth a line.
    Quietly,
    /// A viewer (a tab or an MJPEG client) that watched, and the frames it sent and skipped.
    Watched { what: &'static str, sent: u64 },
    /// Refused a code: how many wrong in a row from that address.
    WrongCode(u32),
}

/// Reads a request's head; what follows it is returned too. On failure, the status to answer.
/// The whole head must come within [`REQUEST_TIMEOUT`], not each byte of it: a client that
/// trickles bytes cannot hold a connection.
pub fn read_request(
    conn: &mut Conn,
) -> std::result::Result<(Request, Vec<u8>), (u16, anyhow::Error)> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let started = std::time::Instant::now();
    loop {
        if started.elapsed() > REQUEST_TIMEOUT {
            return Err((
                408,
                anyhow::anyhow!("its request took over {} s", REQUEST_TIMEOUT.as_secs()),
            ));
        }
        match conn.read(&mut chunk) {
            Ok(0) => {
                return Err((
                    400,
                    anyhow::anyhow!("it closed the connection in the middle of its request"),
                ))
            }
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) => return Err((408, anyhow::Error::from(e).context("reading its request"))),
        }
        match parse_request(&head) {
            Ok(Some((request, length))) => return Ok((request, head.split_off(length))),
            Ok(None) => {}
            Err(e) => return Err((e.status(), e.into())),
        }
    }
}

/// Writes a whole response.
pub fn answer(
    conn: &mut Conn,
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<()> {
    let mut all = vec![("Content-Type", content_type), ("Connection", "close")];
    all.extend_from_slice(headers);
    conn.write_all(&response_head(status, &all, Some(body.len())))?;
    conn.write_all(body)?;
    conn.flush()?;
    Ok(())
}

pub fn page(conn: &mut Conn, content_type: &str, body: &str) -> Result<Served> {
    answer(
        conn,
        200,
        content_type,
        &[("Cache-Control", "no-cache")],
        body.as_bytes(),
    )?;
    Ok(Served::Quietly)
}
