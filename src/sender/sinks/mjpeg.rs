//! `/stream.mjpg` as a sink: multipart JPEG for `<img>`, VLC, FFmpeg, OpenCV and Home
//! Assistant. These clients send no acks, so the kernel bounds the latency instead: the socket
//! takes a new part only once less than 16 KiB of the last is unsent, and while it
//! is full the slot keeps only the newest frame (a stalled client skips frames and slows nobody).
//! Each part's boundary is written right after its JPEG, since browsers show a part only once
//! the next boundary arrives.

use super::{Hooks, Policy, Sinks};
use crate::net;
use crate::wire::http::{mjpeg_part_head, response_head};
use crate::wire::protocol::Codec;
use anyhow::{Context, Result};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// What these clients take, and JPEG tabs and `/snapshot.jpg` with them: the stream's own encode
/// when it is this, otherwise one on the side.
pub const CODEC: Codec = Codec::Jpeg;

const BOUNDARY: &str = "camstreamframe";
/// Bytes of a part the socket may still hold unsent when the next is written.
const UNSENT_LIMIT: usize = 16 * 1024;
/// A client that takes nothing for this long is cut off.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Streams JPEG frames from `sinks` to `out` (the connection `tcp` carries, maybe through TLS)
/// until the stream ends or the client goes; `frame_sent` gets each frame's bytes. Returns the
/// frames the client never got.
pub fn serve(
    out: &mut impl Write,
    tcp: &TcpStream,
    sinks: &Sinks,
    mut frame_sent: impl FnMut(usize),
) -> Result<u64> {
    net::set_unsent_limit(tcp, UNSENT_LIMIT).context("setting TCP_NOTSENT_LOWAT")?;
    tcp.set_write_timeout(Some(SEND_TIMEOUT))?;
    let member = sinks.member(Policy::Live, Hooks::for_connection("mjpeg", None, tcp)?);
    let content_type = format!("multipart/x-mixed-replace;boundary={BOUNDARY}");
    let head = response_head(
        200,
        &[
            ("Content-Type", &content_type),
            (
                "Cache-Control",
                "no-store, no-cache, must-revalidate, max-age=0",
            ),
            ("Pragma", "no-cache"),
            ("Connection", "close"),
        ],
        None,
    );
    out.write_all(&head)?;
    write!(out, "--{BOUNDARY}\r\n")?;
    out.flush()?;
    sinks.activate(member.id);
    while let Some(frame) = member.slot.next() {
        out.write_all(mjpeg_part_head(frame.data.len(), frame.header.capture_unix_us).as_bytes())?;
        out.write_all(&frame.data)?;
        write!(out, "\r\n--{BOUNDARY}\r\n")?;
        out.flush()?;
        frame_sent(frame.data.len());
    }
    Ok(member.slot.skipped())
}
