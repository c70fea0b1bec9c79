//! camstream: live video from one machine's camera to a window on another, over plain TCP.
//!
//! # Architecture
//!
//! ```text
//!  sender                                                          receiver
//!  ┌────────┐   ┌──────────────┐   ┌───────────────────┐          ┌──────────────┐   ┌─────────────┐
//!  │ source │──▶│ encode once  │──▶│ sinks: a slot and │──TCP──▶  │ network      │──▶│ open, check,│
//!  │ camera │   │ (codec seam) │   │ a drop policy each│  writer  │ thread: read │   │ decode, show│
//!  │ file   │   └──────────────┘   │ (a TCP viewer is  │  thread  │ into a reused│   │ record, ack │
//!  │ pattern│          │           │ one kind of sink) │  each    │ buffer ring  │   └─────────────┘
//!  └────────┘          └──▶ preview└───────────────────┘          └──────────────┘
//! ```
//!
//! Every behaviour is one hop from here:
//!
//! - [`wire`]: the bytes between the programs and nothing else. [`wire::protocol`] (messages,
//!   their encoding, no I/O) and [`wire::stream`] (what a hello promises about its frames);
//!   [`wire::connection`] (the `u64` length prefix over any `Read`/`Write`, reused buffers, a
//!   clean close told apart from a cut); [`wire::secure`] (pairing code, SPAKE2, keys, sealing;
//!   bytes only); [`wire::handshake`] (hellos and pairing, written once) ending in a
//!   [`wire::session`] whose frame and ack calls are the same paired or not.
//! - [`media`]: everything OpenCV and FFmpeg. [`media::source`] is the one way pictures come in
//!   (cameras and streams read on their own thread by [`media::live`], files, the
//!   [`media::pattern`]); [`media::codec`] is the codec seam: one file per codec with its
//!   encoder, its decoder and its bitstream checks, chosen in one place; [`media::window`]; and
//!   [`media::recorder`], which keeps H.264 as it came (libavformat) and re-encodes the rest;
//!   [`media::fmp4`] turns H.264 frames into fragmented MP4 for a browser (bytes only).
//! - [`sender`]: `run` wires a source to the sinks. [`sender`]'s capture loop paces the source
//!   and encodes each frame once, forcing a keyframe when a viewer waits for one and, with
//!   `--bitrate auto`, fitting the bit rate to what the viewers' acks say they take; its admission decides who may connect (`--allow`, lockouts,
//!   `--max-viewers`) and logs refusals sparingly; [`sender::sinks`] holds a slot per consumer
//!   with a drop policy, and [`sender::sinks::tcp`] is the per-viewer protocol (a writer, and a
//!   thread reading the acks as they come, which is how the rate control knows how long frames
//!   were on their way).
//!   The same port serves browsers: each connection is told apart by its first byte
//!   ([`wire::sniff`]), and a web one goes to the sender's web side (HTTPS with rustls, the
//!   page, its login with the pairing code, `/stream.mjpg`, `/snapshot.jpg`, `/metrics`), whose
//!   viewers are sinks too: [`sender::sinks::browser`] (a tab over a WebSocket, H.264 as
//!   fragmented MP4 for Media Source Extensions, [`media::fmp4`], or JPEG) and
//!   [`sender::sinks::mjpeg`]. A stream that is not JPEG encodes JPEG on the side only while
//!   such a viewer wants it. `--publish` servers (RTMP, RTSP, SRT) are sinks as well,
//!   [`sender::sinks::publish`], muxed by [`media::remux`], with H.264 from the stream's encode
//!   when its rate is fixed, else from a side encode at a fixed rate.
//! - [`receiver`]: `run` connects, shows one connection's frames and reconnects; its network
//!   thread reads frames, one connection's frames are taken one at a time (decoded, acked,
//!   counted), and its screen and outputs show, record and log them. [`Receiver`] is the same
//!   for a program's own code; [`Hub`] runs several on their threads and hands over each one's
//!   newest frame in turn, and the program's grid (several `--connect`s) draws a hub's frames
//!   into tiles ([`media::mosaic`]). Given a URL
//!   (`rtmp://`, `rtsp://`, `srt://`, `http(s)://`) instead of a sender, it plays that through
//!   [`media::url`] (FFmpeg, read as a live source), in the same window, with no latency.
//! - [`config`], [`prompt`], [`cli`]: typed options, questions, and the binaries' plumbing.
//!   [`stats`]: the `--stats` reports and `--frame-log`. [`service`]: telling systemd the
//!   sender is listening (`scripts/package.sh` builds the Debian package with its unit).
//!
//! # In your own program
//!
//! [`Receiver`] connects to a sender as the `receiver` program does (pairing, checks, acks,
//! reconnection, stats) and hands over each frame, decoded: sequence number, capture time on
//! this machine's clock, latency, and BGR pixels, with the encoded bytes.
//!
//! ```no_run
//! let code = camstream::PairingMode::Code("37-noble-otter".into());
//! let mut receiver = camstream::Receiver::connect("192.168.1.20:9999", code)?;
//! let frame = receiver.recv()?;
//! assert_eq!(frame.bgr.len(), frame.width as usize * frame.height as usize * 3);
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! [`Hub`] does the same for several senders, each followed on its own thread:
//!
//! ```no_run
//! let mut hub = camstream::Hub::new();
//! hub.add("10.0.0.5:9999", camstream::PairingMode::Code("12-brave-heron".into()))?;
//! hub.add("10.0.0.6:9999", camstream::PairingMode::Code("34-calm-otter".into()))?;
//! let (sender, frame) = hub.recv()?; // sender: 0 or 1, the order they were added in
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! [`Sender`] serves a program's own frames, as the `sender` program serves a camera.
//!
//! # Wire format
//!
//! Every message, in both directions, is a `u64` little-endian length followed by that many bytes
//! of bincode (fixed-width little-endian integers; see [`wire::protocol`] and the README for
//! every byte). The receiver sends a `ViewerHello`, the sender a `StreamHello` (version and
//! stream parameters; or a `Refusal` saying why it will not serve it now, and closes) and, once it has the viewer's hello, a `Clock` reading (from which the
//! receiver learns the sender's clock offset, NTP-style); then the sender sends `Frame`s
//! (sequence number, capture time, size, pixel format, codec, keyframe flag, bytes) and the
//! receiver answers each frame it has shown with an `Ack` (which asks for a keyframe when the
//! frame did not decode). A close
//! between messages ends the stream; a close inside one is an error.
//!
//! # Pairing and encryption
//!
//! Unless both sides run with `--insecure`, each sends a SPAKE2 message on the pairing code right
//! after its hello; the keys that come out (one per direction, bound to the sender's hello) seal
//! every later message with AES-256-GCM and a counter nonce, and the first sealed message each
//! way proves the codes matched. Frames are sealed with a frame key the sender hands each paired
//! viewer, in 64 KiB chunks, by each viewer's writer a few chunks at a time right before the socket
//! copies them, and opened by the receiver's network thread right after it read them, while they
//! are in the cache. The crypto is in [`wire::secure`], on bytes only; the length prefix, and so
//! the framing, are unchanged.
//!
//! # Codecs and sinks
//!
//! An encoder turns a picture into a frame that says whether it is a keyframe; a decoder turns a
//! checked frame into zero or one picture. The capture loop and the receiver call them through
//! [`media::codec`] without naming a codec: a new codec is a new file there plus one arm in
//! [`media::codec::format()`] (and its variant in the wire format, its flag value). Every consumer of encoded frames on the sender is a sink with a
//! [`sender::sinks::Slot`] and a [`sender::sinks::Policy`]: live for viewers (a keyframe
//! replaces what waits; frames that depend on others queue for at most 200 ms, then the viewer
//! skips to the next keyframe; so newest-only for JPEG and raw), a short queue for a publisher; work
//! a kind of sink needs once per frame (sealing) is its [`sender::sinks::Prepare`]. A new kind of
//! viewer is a new file in `sender/sinks/` that joins the registry.
//!
//! # Always live
//!
//! The sender keeps about a round trip's worth of frames unacknowledged per viewer (never fewer
//! than [`sender::MIN_FRAMES_IN_FLIGHT`]; `sender/sinks/window.rs` measures each path), so no
//! queue anywhere (ours or the kernel's socket buffers) holds old frames: a viewer that falls
//! behind gets the newest frame from its slot when it acks, and the frames it missed are counted.
//! An unpaced source makes a frame only when some viewer's slot is empty, so one frame is always
//! ready for the next writer and none is made that no viewer wants.
//!
//! # Surviving faults
//!
//! Cameras and network streams are read by a thread that keeps only the newest frame, so a
//! failing or blocked read is noticed within [`media::capture::SIGNAL_TIMEOUT`]; the sender then
//! sends a "NO SIGNAL" picture at a low rate while the source is reopened. The receiver waits for
//! a lost sender and reconnects with backoff, keeping its window, stats and recording. The
//! sender's refusals are rate-limited per address and its threads bounded by `--max-viewers`.
//! A peer's bytes pass the wire's checks (length caps, hello limits, a frame against its stream)
//! and its codec's (a JPEG's own header against the frame) before anything is allocated or
//! OpenCV sees them; `fuzz/` fuzzes exactly those checks and the property tests state them.

pub mod cli;
pub mod config;
pub mod media;
pub mod net;
pub mod prompt;
pub mod receiver;
pub mod sender;
pub mod service;
pub mod stats;
pub mod wire;

pub use receiver::{Frame, Hub, HubSender, Pixels, Receiver, ReceiverOptions};
pub use sender::{Sender, SenderOptions};
pub use wire::protocol::Codec;
pub use wire::secure::PairingMode;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often a loop that waits (for a frame to be due, a sender to come back) looks at its
/// window and the stop signal: highgui handles a window's events only while it is asked to.
pub const POLL: Duration = Duration::from_millis(20);

/// Locks `mutex`, carrying on if a thread panicked while holding it: everything behind our locks
/// is plain data that a panic cannot leave half-changed in a way that matters more than stopping.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A flag any thread can raise to ask the program to finish cleanly.
#[derive(Clone, Default, Debug)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether an error is the peer going away (reset, broken pipe): news, not a fault.
pub fn is_disconnect(error: &anyhow::Error) -> bool {
    use std::io::ErrorKind;
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            )
        })
    })
}

/// An error chain as one lowercase line: `connecting to 127.0.0.1:9: connection refused`.
pub fn error_line(error: &anyhow::Error) -> String {
    let parts: Vec<String> = error
        .chain()
        .map(|cause| tidy(&cause.to_string()))
        .collect();
    parts.join(": ")
}

/// Lowercases a leading capitalised word ("Connection refused", not "OpenCV") and drops the
/// `(os error N)` suffix of I/O errors.
fn tidy(message: &str) -> String {
    let message = match message.find(" (os error ") {
        Some(at) if message.ends_with(')') => &message[..at],
        _ => message,
    };
    let word: String = message.chars().take_while(|c| c.is_alphabetic()).collect();
    let mut letters = word.chars();
    match letters.next() {
        Some(first) if first.is_uppercase() && letters.all(char::is_lowercase) => first
            .to_lowercase()
            .chain(message[first.len_utf8()..].chars())
            .collect(),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn error_line_is_one_lowercase_line() {
        let io = std::io::Error::from_raw_os_error(111);
        let err = Err::<(), _>(io)
            .context("connecting to 192.0.2.5:9999")
            .unwrap_err();
        assert_eq!(
            error_line(&err),
            "connecting to 192.0.2.5:9999: connection refused"
        );
        assert_eq!(tidy("OpenCV(4.6.0) failed"), "OpenCV(4.6.0) failed");
    }
}
