//! HTTP/1.1 as the sender's web side speaks it: one request head parsed (httparse) into what
//! the sender acts on, credentials read from it, and response heads written. Bytes only; every
//! byte of a request is hostile, so lengths are capped and nothing is allocated from a length
//! the peer gave.

use data_encoding::BASE64;
use std::fmt::Write as _;

/// The most of a request's head the sender reads; a longer one gets 431.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// The most of a request's body the sender reads (a pairing code typed into the page).
pub const MAX_REQUEST_BODY: usize = 256;
/// Headers a request may have.
const MAX_HEADERS: usize = 48;
/// The session cookie's name.
pub const COOKIE: &str = "camstream";

/// What the sender needs of a request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without its query.
    pub path: String,
    /// The password of `Authorization: Basic` (the user name is ignored: `curl -u :CODE`).
    pub basic_password: Option<String>,
    /// The session cookie's value.
    pub session: Option<String>,
    /// `Sec-WebSocket-Key` of a WebSocket upgrade.
    pub websocket_key: Option<String>,
    pub host: Option<String>,
    pub origin: Option<String>,
    pub content_length: usize,
}

/// Why a request's head was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("its request's head is over {MAX_REQUEST_HEAD} bytes")]
    TooLong,
    #[error("its request is not HTTP/1.x: {0}")]
    Malformed(String),
    #[error("its request's body of {0} bytes is over {MAX_REQUEST_BODY}")]
    BodyTooLong(usize),
}

impl HeadError {
    /// The status that answers it.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLong => 431,
            HeadError::Malformed(_) => 400,
            HeadError::BodyTooLong(_) => 413,
        }
    }
}

/// Parses a request's head from the start of `bytes`: `Ok(None)` while it is incomplete, or the
/// request and the head's length (what follows belongs to the body or the WebSocket).
pub fn parse_request(bytes: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let length = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_REQUEST_HEAD => {
            return Err(HeadError::TooLong)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let target = parsed.path.unwrap_or("/");
    let mut request = Request {
        method: parsed.method.unwrap_or_default().to_owned(),
        path: target.split(['?', '#']).next().unwrap_or("/").to_owned(),
        ..Request::default()
    };
    for header in parsed.headers.iter() {
        let Ok(value) = std::str::from_utf8(header.value) else {
            continue;
        };
        let value = value.trim();
        match header.name.to_ascii_lowercase().as_str() {
            "authorization" => request.basic_password = basic_password(value),
            "cookie" => request.session = request.session.or_else(|| cookie(value, COOKIE)),
            "sec-websocket-key" => request.websocket_key = Some(value.to_owned()),
            "host" => request.host = Some(value.to_owned()),
            "origin" => request.origin = Some(value.to_owned()),
            "content-length" => {
                let length = value
                    .parse::<usize>()
                    .map_err(|_| HeadError::Malformed(format!("Content-Length {value:?}")))?;
                if length > MAX_REQUEST_BODY {
                    return Err(HeadError::BodyTooLong(length));
                }
                request.content_length = length;
            }
            _ => {}
        }
    }
    Ok(Some((request, length)))
}

/// The password of a `Basic` credential.
fn basic_password(value: &str) -> Option<String> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim().as_bytes()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(password.to_owned())
}

/// A cookie's value from a `Cookie` header.
fn cookie(header: &str, name: &str) -> Option<String> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

/// A response's status line and headers, ending in the blank line; `headers` are
/// `(name, value)` pairs, `body` the length of what follows, if it has one.
pub fn response_head(status: u16, headers: &[(&str, &str)], body: Option<usize>) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if let Some(length) = body {
        let _ = write!(head, "Content-Length: {length}\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The head of one part of a `multipart/x-mixed-replace` MJPEG stream.
pub fn mjpeg_part_head(length: usize, capture_unix_us: u64) -> String {
    format!(
        "Content-Type: image/jpeg\r\nContent-Length: {length}\r\nX-Timestamp: {}.{:06}\r\n\r\n",
        capture_unix_us / 1_000_000,
        capture_unix_us % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_gives_its_path_and_credentials() {
        let head = b"GET /snapshot.jpg?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\
            Authorization: Basic OjEyLWRyb2xsLWNyb3c=\r\nCookie: a=b; camstream=tok\r\n\r\nrest";
        let (request, length) = parse_request(head).unwrap().unwrap();
        assert_eq!(length, head.len() - 4);
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/snapshot.jpg");
        assert_eq!(request.basic_password.as_deref(), Some("12-droll-crow"));
        assert_eq!(request.session.as_deref(), Some("tok"));
        assert_eq!(request.host.as_deref(), Some("127.0.0.1:9"));
    }

    #[test]
    fn partial_long_and_broken_heads() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        let long = [
            b"GET / HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; MAX_REQUEST_HEAD],
        ]
        .concat();
        assert_eq!(parse_request(&long), Err(HeadError::TooLong));
        let broken = b"GET / HTTP/1.1\r\nno colon here\r\n\r\n";
        assert_eq!(parse_request(broken).unwrap_err().status(), 400);
        let body = b"POST /login HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
        assert_eq!(parse_request(body), Err(HeadError::BodyTooLong(100000)));
    }

    #[test]
    fn a_response_head_ends_in_a_blank_line() {
        let head = response_head(401, &[("WWW-Authenticate", "Basic realm=\"x\"")], Some(3));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\
             Content-Length: 3\r\n\r\n"
        );
    }
}
