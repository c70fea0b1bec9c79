//! What a connection is, from its first byte, so that one port can serve every kind of peer: a
//! camstream hello starts with its `u64` little-endian length (24 for version 5's ViewerHello,
//! 16 or 12 for older ones), a TLS ClientHello (a browser at `https://`) with the record type
//! 0x16, and an HTTP request (a browser at `http://`, curl, VLC) with its method in capitals.
//! Bytes only; a later hello must keep its first byte out of 0x16 and `A`..`Z`.

/// The kinds of peer one port tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A camstream receiver (or anything else: the handshake's own checks judge it).
    Camstream,
    /// A TLS client.
    Tls,
    /// A plain HTTP client.
    Http,
}

/// TLS's record type for a handshake message.
const TLS_HANDSHAKE: u8 = 0x16;

pub fn classify(first_byte: u8) -> Peer {
    match first_byte {
        TLS_HANDSHAKE => Peer::Tls,
        b'A'..=b'Z' => Peer::Http,
        _ => Peer::Camstream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::connection::MessageWriter;
    use crate::wire::protocol::{Message, Security, ViewerHello};

    #[test]
    fn a_camstream_hello_a_browser_and_tls_are_told_apart() {
        let mut hello = Vec::new();
        MessageWriter::new(&mut hello)
            .write_message(&Message::ViewerHello(ViewerHello::new(Security::Paired)))
            .unwrap();
        assert_eq!(classify(hello[0]), Peer::Camstream);
        for request in ["GET / HTTP/1.1", "HEAD /", "POST /login", "OPTIONS *"] {
            assert_eq!(classify(request.as_bytes()[0]), Peer::Http, "{request}");
        }
        // A ClientHello record: type, version 3.1, length.
        assert_eq!(classify([0x16, 0x03, 0x01, 0x02, 0x00][0]), Peer::Tls);
    }
}
