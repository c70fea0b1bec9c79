//! The sender's web side, on the same port as its receivers: HTTPS with the sender's
//! certificate (plain HTTP under `--insecure`), one request per connection.
//!
//! - `/`, `/page.js`, `/page.css`: the page (compiled in; it loads nothing from elsewhere). It
//!   asks for the pairing code itself, or takes it from the link's `#code=`.
//! - `POST /login`: a right code gets a session cookie; wrong codes meet the same lockout as a
//!   receiver's (`login.rs`, which also checks the data endpoints' credentials).
//! - `/ws` (the page's stream, [`sinks::browser`]), `/stream.mjpg` ([`sinks::mjpeg`]),
//!   `/snapshot.jpg`, `/metrics` ([`super::metrics`]): the session cookie, or HTTP basic auth
//!   with the code as the password (curl, FFmpeg, VLC, Home Assistant), or a `401` that asks
//!   for it.
//!
//! `conn.rs` is the connection itself: TLS or not, its request read, whole responses written.

mod conn;
mod login;

use super::sinks::flight::{log_stalled, stalled};
use super::sinks::{self, browser, Hooks, Policy};
use super::{metrics, Shared};
use crate::error_line;
use crate::wire::http::{self, response_head, Request};
use anyhow::{bail, Context, Result};
pub use conn::Served;
use conn::{answer, page, read_request, Conn, REQUEST_TIMEOUT};
use login::{authorize, locked_out, login, unauthorized, Access};
use rustls::{ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::WebSocket;

const PAGE: &str = include_str!("../page/index.html");
const SCRIPT: &str = include_str!("../page/page.js");
const STYLE: &str = include_str!("../page/page.css");
/// How long `/snapshot.jpg` waits for a frame.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3);
/// The WebSocket close code that tells the page the sender is full (4000-4999 are ours).
const SENDER_FULL: u16 = 4002;

/// Serves one web connection; `tls` says whether it began with a TLS ClientHello.
pub(super) fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: bool,
    shared: &Shared,
) -> Result<Served> {
    tcp.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut conn = match (tls, &shared.web) {
        (true, Some(keys)) => {
            let mut session = ServerConnection::new(keys.tls.clone()).context("starting TLS")?;
            let mut tcp = tcp;
            while session.is_handshaking() {
                session.complete_io(&mut tcp).context("in the TLS handshake")?;
            }
            Conn::Tls(Box::new(StreamOwned::new(session, tcp)))
        }
        (true, None) => bail!(
            "a TLS client (a browser at https://?) reached a sender running --insecure: its page is at http://"
        ),
        (false, _) => Conn::Plain(tcp),
    };
    let (request, mut rest) = match read_request(&mut conn) {
        Ok(read) => read,
        Err((status, e)) => {
            let _ = answer(
                &mut conn,
                status,
                "text/plain; charset=utf-8",
                &[],
                e.to_string().as_bytes(),
            );
            return Err(e);
        }
    };
    if !tls && shared.web.is_some() {
        // The same port speaks HTTPS: send the browser there.
        let host = request.host.clone().unwrap_or_else(|| peer.to_string());
        let location = format!("https://{host}{}", request.path);
        answer(
            &mut conn,
            308,
            "text/plain",
            &[("Location", &location)],
            b"",
        )?;
        return Ok(Served::Quietly);
    }
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/" | "/index.html") => page(&mut conn, "text/html; charset=utf-8", PAGE),
        ("GET", "/page.js") => page(&mut conn, "text/javascript; charset=utf-8", SCRIPT),
        ("GET", "/page.css") => page(&mut conn, "text/css; charset=utf-8", STYLE),
        ("POST", "/login") => {
            while rest.len() < request.content_length {
                let mut more = [0u8; http::MAX_REQUEST_BODY];
                match conn.read(&mut more)? {
                    0 => bail!("it closed the connection in the middle of its login"),
                    n => rest.extend_from_slice(&more[..n]),
                }
            }
            rest.truncate(request.content_length);
            login(
                &mut conn,
                &String::from_utf8_lossy(&rest),
                peer,
                shared,
                tls,
            )
        }
        (_, "/ws" | "/stream.mjpg" | "/snapshot.jpg" | "/metrics") => {
            match authorize(&request, peer, shared) {
                Access::Granted => {}
                Access::Refused(failures) => {
                    unauthorized(&mut conn)?;
                    return Ok(failures.map_or(Served::Quietly, Served::WrongCode));
                }
                Access::LockedOut(wait) => {
                    locked_out(&mut conn, wait)?;
                    return Ok(Served::Quietly);
                }
            }
            match request.path.as_str() {
                "/ws" => watch_page(conn, &request, rest, shared),
                "/stream.mjpg" => stream_mjpeg(conn, shared),
                "/snapshot.jpg" => snapshot(&mut conn, shared),
                _ => {
                    let text = metrics::render(shared);
                    answer(
                        &mut conn,
                        200,
                        "text/plain; version=0.0.4; charset=utf-8",
                        &[],
                        text.as_bytes(),
                    )?;
                    Ok(Served::Quietly)
                }
            }
        }
        ("GET" | "POST", _) => {
            answer(&mut conn, 404, "text/plain", &[], b"not found\n")?;
            Ok(Served::Quietly)
        }
        _ => {
            answer(&mut conn, 405, "text/plain", &[("Allow", "GET, POST")], b"")?;
            Ok(Served::Quietly)
        }
    }
}

/// `/ws`: the page's own stream.
fn watch_page(mut conn: Conn, request: &Request, rest: Vec<u8>, shared: &Shared) -> Result<Served> {
    let Some(key) = &request.websocket_key else {
        answer(
            &mut conn,
            400,
            "text/plain",
            &[],
            b"a WebSocket upgrade was expected\n",
        )?;
        return Ok(Served::Quietly);
    };
    // A page from another site must not open the stream with this one's cookie.
    let same_origin = match (&request.origin, &request.host) {
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, h)| h == host),
        (None, _) => true,
        (Some(_), None) => false,
    };
    if !same_origin {
        answer(
            &mut conn,
            403,
            "text/plain",
            &[],
            b"the page is from another origin\n",
        )?;
        return Ok(Served::Quietly);
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    conn.write_all(&response_head(
        101,
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", &accept),
        ],
        None,
    ))?;
    conn.flush()?;
    let tcp = conn.tcp().try_clone()?;
    let config = WebSocketConfig::default()
        .write_buffer_size(0)
        .max_message_size(Some(crate::wire::web::MAX_PAGE_MESSAGE))
        .max_frame_size(Some(crate::wire::web::MAX_PAGE_MESSAGE));
    let mut ws = WebSocket::from_partially_read(conn, rest, Role::Server, Some(config));
    let Some(_seat) = shared.admission.seat() else {
        // Refused after the upgrade, with a reason the page can show: a browser cannot read
        // the status of a refused upgrade, and would take it for a wrong code.
        let full = format!(
            "the sender is full: {0} of {0} viewers (--max-viewers)",
            shared.admission.max_viewers()
        );
        let _ = ws.close(Some(CloseFrame {
            code: CloseCode::Library(SENDER_FULL),
            reason: full.into(),
        }));
        let _ = ws.flush();
        return Ok(Served::Quietly);
    };
    let feeds = browser::Feeds {
        main: &shared.feeds.sinks,
        jpeg: shared.feeds.jpeg_sinks(),
        fragments: shared.feeds.fragments.as_ref(),
    };
    let tally = metrics::Tally(&shared.counters);
    let (sent, skipped) = browser::serve(
        ws,
        &tcp,
        &shared.stream,
        &feeds,
        shared.viewer_timeout,
        &tally,
    )?;
    shared
        .counters
        .frames_skipped
        .fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
    Ok(Served::Watched {
        what: "browser",
        sent,
    })
}

/// `/stream.mjpg`.
fn stream_mjpeg(mut conn: Conn, shared: &Shared) -> Result<Served> {
    let Some(_seat) = shared.admission.seat() else {
        answer(
            &mut conn,
            503,
            "text/plain",
            &[("Retry-After", "5")],
            b"the sender is full (--max-viewers)\n",
        )?;
        return Ok(Served::Quietly);
    };
    let tcp = conn.tcp().try_clone()?;
    let tally = metrics::Tally(&shared.counters);
    let mut sent = 0;
    let skipped = sinks::mjpeg::serve(&mut conn, &tcp, shared.feeds.jpeg_sinks(), |bytes| {
        sent += 1;
        browser::Tally::frame_sent(&tally, bytes);
    })?;
    shared
        .counters
        .frames_skipped
        .fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
    Ok(Served::Watched {
        what: "MJPEG client",
        sent,
    })
}

/// `/snapshot.jpg`: the next JPEG frame.
fn snapshot(conn: &mut Conn, shared: &Shared) -> Result<Served> {
    let sinks = shared.feeds.jpeg_sinks();
    let member = sinks.member(
        Policy::Live,
        Hooks {
            kind: "snapshot",
            prepare: None,
            disconnect: Box::new(|| {}),
        },
    );
    sinks.activate(member.id);
    let frame = member.slot.next_within(Some(SNAPSHOT_TIMEOUT));
    drop(member);
    match frame {
        Some(frame) => answer(
            conn,
            200,
            "image/jpeg",
            &[("Cache-Control", "no-store")],
            &frame.data,
        )?,
        None => answer(
            conn,
            503,
            "text/plain",
            &[("Retry-After", "1")],
            b"no frame came in time\n",
        )?,
    }
    Ok(Served::Quietly)
}

/// Logs how a web connection went.
pub(super) fn log_served(served: &Result<Served>, peer: SocketAddr, shared: &Shared) {
    match served {
        Ok(Served::Quietly) => {}
        Ok(Served::Watched { what, sent }) => log::info!("{what} {peer} left after {sent} frames"),
        Ok(Served::WrongCode(failures)) => shared.admission.complain(peer, "pairing", || {
            format!("refused web client {peer}: pairing code did not match ({failures} in a row)")
        }),
        Err(e) if crate::is_disconnect(e) => {}
        Err(e) if stalled(e).is_some() => log_stalled("browser", peer, e),
        Err(e) => shared.admission.complain(peer, "web", || {
            format!("web client {peer}: {}", error_line(e))
        }),
    }
}
