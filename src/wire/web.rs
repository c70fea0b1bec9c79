//! What the sender and its web page say over their WebSocket (bytes only). Text messages are
//! JSON; frames are binary: an 18-byte head (kind, sequence number, capture time, keyframe flag)
//! and the payload. The README's "Browser" section shows every message.

use serde::{Deserialize, Serialize};

/// Bytes of a binary message's head.
pub const FRAME_HEAD_LEN: usize = 18;
/// The largest message a page may send (its acks and clock readings are tens of bytes).
pub const MAX_PAGE_MESSAGE: usize = 4 * 1024;

/// What a binary message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Payload {
    /// The fMP4 init segment (`ftyp`+`moov`); its capture time is media time 0's.
    Init = 0,
    /// One frame as an fMP4 fragment (`moof`+`mdat`).
    Fragment = 1,
    /// One frame as a JPEG file.
    Jpeg = 2,
}

/// Writes a binary message's head into `out` (cleared first); the payload follows it.
pub fn frame_head(out: &mut Vec<u8>, kind: Payload, seq: u64, capture_unix_us: u64, key: bool) {
    out.clear();
    out.push(kind as u8);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&capture_unix_us.to_le_bytes());
    out.push(u8::from(key));
}

/// The sender's first message: what the stream is.
#[derive(Debug, Serialize)]
pub struct StreamInfo<'a> {
    pub codec: &'a str,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Set for a stream the page may play through Media Source Extensions.
    pub mime: Option<&'a str>,
}

/// Messages from the sender, as text.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderMessage<'a> {
    Stream(StreamInfo<'a>),
    /// An answer to the page's clock reading: its `t1`, and when the sender read it (`t2`) and
    /// answered (`t3`), µs since the Unix epoch on the sender's clock.
    Clock {
        t1: f64,
        t2: u64,
        t3: u64,
    },
}

/// Messages from the page, as text.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum PageMessage {
    /// How the page wants frames: fMP4 for Media Source Extensions, or JPEG.
    Start { mse: bool },
    /// A clock reading: the page's wall clock, µs since the Unix epoch.
    Clock { t1: f64 },
    /// Frame `seq` was shown, `latency_us` after its capture (as the page measured it).
    Ack {
        seq: u64,
        #[serde(default)]
        latency_us: Option<f64>,
    },
    /// The page received `frames` it will never show: its decoder dropped them, or it jumped
    /// past them to the live edge. Acks say a frame arrived; this says the machine playing it
    /// could not keep up.
    Unshown { frames: u64 },
}

impl PageMessage {
    /// Parses one text message from the page.
    pub fn parse(text: &str) -> Result<PageMessage, String> {
        serde_json::from_str(text).map_err(|e| format!("the page sent {text:.60?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_as_the_page_sees_them() {
        let stream = SenderMessage::Stream(StreamInfo {
            codec: "h264",
            width: 1280,
            height: 720,
            fps: 30.0,
            mime: Some("video/mp4; codecs=\"avc1.64001f\""),
        });
        assert_eq!(
            serde_json::to_string(&stream).unwrap(),
            r#"{"stream":{"codec":"h264","width":1280,"height":720,"fps":30.0,"mime":"video/mp4; codecs=\"avc1.64001f\""}}"#
        );
        assert_eq!(
            PageMessage::parse(r#"{"ack":{"seq":7,"latency_us":1500.5}}"#),
            Ok(PageMessage::Ack {
                seq: 7,
                latency_us: Some(1500.5)
            })
        );
        assert_eq!(
            PageMessage::parse(r#"{"start":{"mse":false}}"#),
            Ok(PageMessage::Start { mse: false })
        );
        assert_eq!(
            PageMessage::parse(r#"{"unshown":{"frames":3}}"#),
            Ok(PageMessage::Unshown { frames: 3 })
        );
        assert!(PageMessage::parse(r#"{"ack":{}}"#).is_err());
        assert!(PageMessage::parse(r#"{"unshown":{"frames":-1}}"#).is_err());
        let mut head = vec![9; 3];
        frame_head(&mut head, Payload::Jpeg, 0x0102, 0x0a0b, true);
        assert_eq!(head.len(), FRAME_HEAD_LEN);
        assert_eq!(head[..3], [2, 2, 1]);
        assert_eq!(head[9..11], [0x0b, 0x0a]);
        assert_eq!(head[17], 1);
    }
}
