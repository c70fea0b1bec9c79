//! Messages over any `Read`/`Write`: the `u64` length prefix, reused buffers, limits, and the one
//! distinction that matters to a viewer: a close between messages is the end of the stream
//! (`Ok(None)`/`Ok(false)`), a close inside one is an error.

use super::protocol::{self, FrameHeader, Message, LENGTH_PREFIX_LEN};
use super::secure::{self, Channel};
use anyhow::{bail, Context, Result};
use byteorder::{ByteOrder, LittleEndian};
use std::io::{ErrorKind, IoSlice, Read, Write};

/// Reads one message's payload into `buf` (reusing its capacity). Returns `Ok(false)` when the
/// peer closed cleanly before the first byte of a message. A length over `max_len` is refused
/// before anything is allocated for it.
pub fn read_payload<R: Read>(reader: &mut R, buf: &mut Vec<u8>, max_len: usize) -> Result<bool> {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    let got = read_fully(reader, &mut prefix)?;
    if got == 0 {
        return Ok(false);
    }
    if got < prefix.len() {
        bail!(
            "connection closed in the middle of a message (after {got} of {} length bytes)",
            prefix.len()
        );
    }
    let len = protocol::check_length(prefix, max_len)?;
    // Growing zero-fills only the new part; at a steady frame size this writes nothing.
    buf.resize(len, 0);
    let got = read_fully(reader, buf)?;
    if got < len {
        bail!("connection closed in the middle of a message (after {got} of {len} bytes)");
    }
    Ok(true)
}

/// A read timeout set on the socket ran out: the peer is there but silent.
#[derive(Debug, thiserror::Error)]
#[error("timed out waiting for data")]
pub struct TimedOut;

/// Whether `error` is a read that ran out of time ([`TimedOut`]).
pub fn is_timeout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<TimedOut>())
}

/// Fills `buf` unless the stream ends first; returns how many bytes were read.
fn read_fully<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(TimedOut.into())
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

/// Reads messages into one buffer that is reused for every message.
pub struct MessageReader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: Read> MessageReader<R> {
    pub fn new(inner: R) -> Self {
        MessageReader {
            inner,
            buf: Vec::new(),
        }
    }

    /// The next message, or `None` at a clean end of stream.
    pub fn read_message(&mut self, max_len: usize) -> Result<Option<Message<'_>>> {
        if !read_payload(&mut self.inner, &mut self.buf, max_len)? {
            return Ok(None);
        }
        Ok(Some(protocol::decode(&self.buf)?))
    }

    /// The next payload as bytes, or `None` at a clean end of stream.
    pub fn read_payload(&mut self, max_len: usize) -> Result<Option<&[u8]>> {
        let more = read_payload(&mut self.inner, &mut self.buf, max_len)?;
        Ok(more.then_some(self.buf.as_slice()))
    }

    /// The next sealed payload, opened by `channel` (the plaintext is at most `max_len`), or
    /// `None` at a clean end of stream.
    pub fn read_sealed(&mut self, max_len: usize, channel: &mut Channel) -> Result<Option<&[u8]>> {
        let sealed_max = max_len + secure::TAG_LEN;
        if !read_payload(&mut self.inner, &mut self.buf, sealed_max)? {
            return Ok(None);
        }
        Ok(Some(channel.open(&mut self.buf)?))
    }
}

/// Writes messages through one reused header buffer.
pub struct MessageWriter<W> {
    inner: W,
    buf: Vec<u8>,
    /// A message being sealed, reused: a paired receiver seals an ack for every frame.
    sealed: Vec<u8>,
}

impl<W: Write> MessageWriter<W> {
    pub fn new(inner: W) -> Self {
        MessageWriter {
            inner,
            buf: Vec::new(),
            sealed: Vec::new(),
        }
    }

    /// Writes one message; returns the bytes it took on the wire.
    pub fn write_message(&mut self, message: &Message<'_>) -> Result<usize> {
        self.start();
        protocol::encode_into(message, &mut self.buf)?;
        self.finish(&[])
    }

    /// Writes one message sealed by `channel`.
    pub fn write_sealed(&mut self, message: &Message<'_>, channel: &mut Channel) -> Result<usize> {
        self.start();
        let mut sealed = std::mem::take(&mut self.sealed);
        sealed.clear();
        protocol::encode_into(message, &mut sealed)?;
        channel.seal(&mut sealed)?;
        let written = self.finish(&sealed);
        self.sealed = sealed;
        written
    }

    /// Writes a payload that is already encoded (a sealed frame).
    pub fn write_payload(&mut self, payload: &[u8]) -> Result<usize> {
        self.start();
        self.finish(payload)
    }

    /// Writes a frame message with `data` sent from where it is, not copied behind the header.
    pub fn write_frame(&mut self, header: &FrameHeader, data: &[u8]) -> Result<usize> {
        self.start();
        protocol::encode_frame_prefix(header, data.len(), &mut self.buf)?;
        self.finish(data)
    }

    fn start(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; LENGTH_PREFIX_LEN]);
    }

    fn finish(&mut self, data: &[u8]) -> Result<usize> {
        let len = (self.buf.len() - LENGTH_PREFIX_LEN + data.len()) as u64;
        LittleEndian::write_u64(&mut self.buf[..LENGTH_PREFIX_LEN], len);
        write_all_vectored(
            &mut self.inner,
            &mut [IoSlice::new(&self.buf), IoSlice::new(data)],
        )?;
        self.inner.flush().context("flushing")?;
        Ok(self.buf.len() + data.len())
    }
}

/// `Write::write_all_vectored` is not stable yet; this is its loop.
fn write_all_vectored<W: Write>(writer: &mut W, mut slices: &mut [IoSlice<'_>]) -> Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match writer.write_vectored(slices) {
            Ok(0) => bail!("connection closed while writing"),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                bail!("timed out writing")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::{Codec, Frame, PixelFormat, ViewerHello, MAX_MESSAGE_LEN};
    use std::io::Cursor;

    fn header(seq: u64) -> FrameHeader {
        FrameHeader {
            seq,
            capture_unix_us: 5,
            width: 1,
            height: 1,
            pixel_format: PixelFormat::Bgr8,
            codec: Codec::Raw,
            keyframe: true,
        }
    }

    fn two_frames_and_a_hello() -> Vec<u8> {
        let mut writer = MessageWriter::new(Vec::new());
        writer
            .write_message(&Message::ViewerHello(ViewerHello::new(
                protocol::Security::Insecure,
            )))
            .unwrap();
        writer.write_frame(&header(0), &[1, 2, 3]).unwrap();
        writer.write_frame(&header(1), &[4, 5, 6]).unwrap();
        writer.inner
    }

    #[test]
    fn messages_round_trip_and_a_clean_close_is_none() {
        let mut reader = MessageReader::new(Cursor::new(two_frames_and_a_hello()));
        assert_eq!(
            reader.read_message(MAX_MESSAGE_LEN).unwrap(),
            Some(Message::ViewerHello(ViewerHello::new(
                protocol::Security::Insecure
            )))
        );
        for (seq, data) in [(0, [1, 2, 3]), (1, [4, 5, 6])] {
            assert_eq!(
                reader.read_message(MAX_MESSAGE_LEN).unwrap(),
                Some(Message::Frame(Frame {
                    header: header(seq),
                    data: &data
                }))
            );
        }
        assert_eq!(reader.read_message(MAX_MESSAGE_LEN).unwrap(), None);
    }

    #[test]
    fn a_close_inside_a_message_is_an_error() {
        let bytes = two_frames_and_a_hello();
        let frame_len = 8 + 45 + 3;
        // The hello is 8 + 24 bytes on the wire.
        let message_ends = [0, 32, 32 + frame_len, bytes.len()];
        for cut in (0..bytes.len()).filter(|c| !message_ends.contains(c)) {
            let mut reader = MessageReader::new(Cursor::new(&bytes[..cut]));
            let err = loop {
                match reader.read_payload(MAX_MESSAGE_LEN) {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("cut at {cut} read as a clean close"),
                    Err(e) => break e,
                }
            };
            assert!(
                err.to_string().contains("in the middle of a message"),
                "{err}"
            );
        }
        let mut reader = MessageReader::new(Cursor::new(&bytes[..32 + 3]));
        reader.read_payload(MAX_MESSAGE_LEN).unwrap();
        let err = reader.read_payload(MAX_MESSAGE_LEN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection closed in the middle of a message (after 3 of 8 length bytes)"
        );
    }

    #[test]
    fn a_huge_length_is_refused_without_allocating() {
        let mut bytes = (1u64 << 63).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let mut buf = Vec::new();
        let err = read_payload(&mut Cursor::new(bytes), &mut buf, MAX_MESSAGE_LEN).unwrap_err();
        assert!(
            err.to_string().contains("over the 67108864-byte limit"),
            "{err}"
        );
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn the_buffer_is_reused() {
        let mut reader = MessageReader::new(Cursor::new(two_frames_and_a_hello()));
        reader.read_payload(MAX_MESSAGE_LEN).unwrap();
        reader.read_payload(MAX_MESSAGE_LEN).unwrap();
        let before = reader.buf.as_ptr();
        reader.read_payload(MAX_MESSAGE_LEN).unwrap();
        assert_eq!(reader.buf.as_ptr(), before);
    }
}
