//! Who may have the web side's data: the pairing code typed on the page (`POST /login`, which
//! gets a session cookie) or given as an HTTP basic-auth password, under the same lockouts as
//! a receiver's wrong codes.

use super::conn::{answer, Conn, Served};
use crate::config::parse_code;
use crate::sender::Shared;
use crate::wire::http::{Request, COOKIE};
use crate::wire::protocol::unix_micros;
use crate::wire::tls::{code_matches, SESSION_SECONDS};
use anyhow::Result;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

const REALM: &str = "Basic realm=\"camstream\"";

/// Asks for the code: as basic auth's password, or through the page.
pub fn unauthorized(conn: &mut Conn) -> Result<()> {
    answer(
        conn,
        401,
        "text/plain; charset=utf-8",
        &[("WWW-Authenticate", REALM)],
        b"this camstream sender wants its pairing code: log in on its page, or use it as the password (curl -u :CODE)\n",
    )
}

/// Tells a client locked out after wrong codes how long to wait.
pub fn locked_out(conn: &mut Conn, wait: Duration) -> Result<()> {
    let seconds = wait.as_secs_f64().ceil().to_string();
    let body = format!("too many wrong pairing codes: try again in {seconds} s\n");
    answer(
        conn,
        429,
        "text/plain; charset=utf-8",
        &[("Retry-After", &seconds)],
        body.as_bytes(),
    )
}

/// Whether a request may have a data endpoint.
pub enum Access {
    Granted,
    /// No credentials, or a wrong code (and how many in a row).
    Refused(Option<u32>),
    LockedOut(Duration),
}

/// Whether `request` may have a data endpoint: a session, or the code as a password.
pub fn authorize(request: &Request, peer: SocketAddr, shared: &Shared) -> Access {
    let Some(keys) = &shared.web else {
        return Access::Granted; // --insecure: open, as the stream is.
    };
    let now = unix_seconds();
    if request
        .session
        .as_deref()
        .is_some_and(|token| keys.sessions.check(token, now))
    {
        return Access::Granted;
    }
    let Some(typed) = &request.basic_password else {
        return Access::Refused(None);
    };
    if let Some(wait) = shared.admission.lockout(peer) {
        return Access::LockedOut(wait);
    }
    match parse_code(typed).is_ok_and(|typed| code_matches(&typed, &keys.code)) {
        true => Access::Granted,
        false => Access::Refused(Some(shared.admission.wrong_code(peer))),
    }
}

/// `POST /login`: a right code gets a session cookie.
pub fn login(
    conn: &mut Conn,
    typed: &str,
    peer: SocketAddr,
    shared: &Shared,
    tls: bool,
) -> Result<Served> {
    let Some(keys) = &shared.web else {
        answer(conn, 204, "text/plain", &[], b"")?;
        return Ok(Served::Quietly);
    };
    if let Some(wait) = shared.admission.lockout(peer) {
        locked_out(conn, wait)?;
        return Ok(Served::Quietly);
    }
    if !parse_code(typed).is_ok_and(|typed| code_matches(&typed, &keys.code)) {
        let failures = shared.admission.wrong_code(peer);
        answer(
            conn,
            403,
            "text/plain; charset=utf-8",
            &[],
            b"pairing code did not match\n",
        )?;
        return Ok(Served::WrongCode(failures));
    }
    let secure = if tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; HttpOnly{secure}; SameSite=Strict; Path=/; Max-Age={SESSION_SECONDS}",
        keys.sessions.issue(unix_seconds())
    );
    answer(conn, 204, "text/plain", &[("Set-Cookie", &cookie)], b"")?;
    Ok(Served::Quietly)
}

fn unix_seconds() -> u64 {
    unix_micros(SystemTime::now()) / 1_000_000
}
