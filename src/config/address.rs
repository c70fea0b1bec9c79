//! Where to connect, listen and publish: `HOST:PORT` endpoints, the stream URLs the receiver
//! plays, addresses to listen on and connect from, and `--publish` targets.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A host (name or IP) and a port, as given to `--connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (host, port) = split_host_port(text).ok_or_else(|| {
            format!("invalid address \"{text}\": use HOST:PORT, like 192.168.1.20:9999")
        })?;
        let port = parse_port(port)?;
        if host.is_empty() {
            return Err(format!("invalid address \"{text}\": the host is missing"));
        }
        if looks_like_ipv4(host) || host.contains(':') {
            parse_ip(host)?;
        } else if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!(
                "invalid host \"{host}\": not an IP address or host name"
            ));
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

/// What `--connect` names: a camstream sender, or a stream that a media server or an IP camera
/// serves. A URL carries no pairing: whatever protects it is the server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connect {
    Sender(Endpoint),
    Url(StreamUrl),
}

impl fmt::Display for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connect::Sender(endpoint) => endpoint.fmt(f),
            Connect::Url(url) => url.fmt(f),
        }
    }
}

impl FromStr for Connect {
    type Err = String;

    /// A URL when it has a scheme (`rtmp://...`), otherwise `HOST:PORT` of a camstream sender.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.contains("://") {
            true => text.parse().map(Connect::Url),
            false => text.parse().map(Connect::Sender).map_err(|e| {
                format!("{e} (or a URL: rtmp://, rtsp://, srt://, http:// or https://)")
            }),
        }
    }
}

/// The protocols a receiver plays a URL over (FFmpeg's, by the same names).
pub const URL_SCHEMES: [&str; 5] = ["rtmp", "rtsp", "srt", "http", "https"];

/// A stream's URL, as given: its scheme is one of [`URL_SCHEMES`] and it names a host. It is
/// shown without the password it may carry (`https://:CODE@host/...`).
#[derive(Clone, PartialEq, Eq)]
pub struct StreamUrl {
    text: String,
    scheme: String,
    /// Where the host starts and where it ends (before the path, query or fragment).
    host: std::ops::Range<usize>,
}

impl StreamUrl {
    /// The URL as given, password and all: what FFmpeg opens.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `rtmp`, `rtsp`, `srt`, `http` or `https`, lower case.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether its path ends in `.m3u8` (an HLS playlist), whatever the query after it.
    pub fn is_hls(&self) -> bool {
        let rest = &self.text[self.host.end..];
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        path.to_ascii_lowercase().ends_with(".m3u8")
    }
}

impl fmt::Display for StreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, &self.text[self.host.start..])
    }
}

/// The password stays out of debug output too.
impl fmt::Debug for StreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamUrl({self})")
    }
}

impl FromStr for StreamUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let shown = |text: &str| match text.split_once("://") {
            // Credentials, if any, are not echoed in the error either.
            Some((scheme, rest)) => {
                format!("{scheme}://{}", rest.rsplit('@').next().unwrap_or(rest))
            }
            None => text.to_owned(),
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("invalid URL \"{}\": it has no scheme", shown(text)))?;
        let scheme = scheme.to_ascii_lowercase();
        if !URL_SCHEMES.contains(&scheme.as_str()) {
            return Err(format!(
                "unsupported URL \"{}\": use rtmp://, rtsp://, srt://, http:// or https://",
                shown(text)
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "invalid URL \"{}\": it has spaces or control characters",
                shown(text)
            ));
        }
        let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        let userinfo_len = authority.rfind('@').map_or(0, |at| at + 1);
        let start = text.len() - rest.len() + userinfo_len;
        let end = text.len() - rest.len() + authority_len;
        let host = &text[start..end];
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or(v6, |(ip, _)| ip),
            None => host.split(':').next().unwrap_or_default(),
        };
        if name.is_empty() {
            return Err(format!(
                "invalid URL \"{}\": the host is missing",
                shown(text)
            ));
        }
        Ok(StreamUrl {
            text: text.to_owned(),
            scheme,
            host: start..end,
        })
    }
}

/// Splits `host:port` or `[v6]:port`.
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host, port));
    }
    text.rsplit_once(':')
        .filter(|(host, _)| !host.contains(':'))
}

fn looks_like_ipv4(host: &str) -> bool {
    host.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// An IP address, v4 or v6.
pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse().map_err(|_| {
        if looks_like_ipv4(text) {
            format!("invalid IP address \"{text}\": use four numbers 0-255, like 192.168.1.20")
        } else {
            format!("invalid IP address \"{text}\"")
        }
    })
}

/// A port a peer can connect to: 1-65535.
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(format!("invalid port \"{text}\": must be 1-65535")),
    }
}

/// `IP:PORT` to listen on; port 0 picks a free one.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(text).ok_or_else(|| {
        format!("invalid listen address \"{text}\": use IP:PORT, like 0.0.0.0:9999")
    })?;
    let ip = parse_ip(host)?;
    let port = match port {
        "0" => 0,
        other => parse_port(other)?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// `IP[:PORT]` to connect from; without a port the system picks one.
pub fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    match split_host_port(text) {
        Some(_) => parse_listen(text),
        None => Ok(SocketAddr::new(parse_ip(text)?, 0)),
    }
}

/// A media server to publish to (`--publish`): its URL and the container its protocol carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishTarget {
    pub url: String,
    /// FFmpeg's muxer: `flv` for RTMP, `rtsp`, `mpegts` for SRT.
    pub container: &'static str,
}

impl PublishTarget {
    /// The URL as logs and metrics show it: scheme, host, port and the first path segment (an
    /// RTMP application), without the user, password, stream key or query, which are secrets.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("", &self.url));
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let first = path.split('/').next().unwrap_or("");
        let more = if path.len() > first.len() { "/…" } else { "" };
        match first {
            "" => format!("{scheme}://{host}"),
            first => format!("{scheme}://{host}/{first}{more}"),
        }
    }
}

impl FromStr for PublishTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let scheme = text
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        let container = match scheme.as_deref() {
            Some("rtmp" | "rtmps") => "flv",
            Some("rtsp" | "rtsps") => "rtsp",
            Some("srt") => "mpegts",
            _ => {
                return Err(format!(
                    "invalid --publish URL \"{text}\": use rtmp://, rtsp:// or srt://, like rtmp://server/live/stream"
                ))
            }
        };
        let host = text.split_once("://").map_or("", |(_, rest)| rest);
        if host.is_empty() || host.starts_with(['/', ':']) {
            return Err(format!(
                "invalid --publish URL \"{text}\": the server is missing"
            ));
        }
        Ok(PublishTarget {
            url: text.to_owned(),
            container,
        })
    }
}
