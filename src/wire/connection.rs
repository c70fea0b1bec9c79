//! Messages over any `Read`/`Write`: the `u64` length prefix, reused buffers, limits, and the one
//! distinction that matters to a viewer: a close between messages is the end of the stream
//! (`Ok(None)`/`Ok(false)`), a close inside one is an error.

use super::protocol::{self, FrameHeader, Message, LENGTH_PREFIX_LEN};
use super::secure::{self, Channel, FrameOpener, FrameSealer};
use anyhow::{bail, Context, Result};
use byteorder::{ByteOrder, LittleEndian};
use std::io::{ErrorKind, IoSlice, Read, Write};

/// Reads one message's payload into `buf` (reusing its capacity). Returns `Ok(false)` when the
/// peer closed cleanly before the first byte of a message. A length over `max_len` is refused
/// before anything is allocated for it.
pub fn read_payload<R: Read>(reader: &mut R, buf: &mut Vec<u8>, max_len: usize) -> Result<bool> {
    let Some(len) = read_length(reader, max_len)? else {
        return Ok(false);
    };
    // Growing zero-fills only the new part; at a steady frame size this writes nothing.
    buf.resize(len, 0);
    read_rest(reader, buf, 0, len)?;
    Ok(true)
}

/// A reader that can read onto the end of a buffer without zeroing its capacity first (a
/// socket: the kernel writes the bytes), for frames read into new buffers.
pub trait AppendRead: Read {
    /// Reads at most `max` bytes onto the end of `buf`; how many (0 at the end of the stream).
    fn read_appending(&mut self, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize>;
}

impl AppendRead for std::net::TcpStream {
    fn read_appending(&mut self, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
        crate::net::recv_appending(self, buf, max)
    }
}

/// [`read_payload`] for a frame message, read onto the cleared `buf` with
/// [`AppendRead::read_appending`]: a buffer handed on with its frame (the API's raw pixels)
/// is replaced by a new one, which this fills without zeroing it first.
pub fn read_frame_payload<R: AppendRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max_len: usize,
) -> Result<bool> {
    let Some(len) = read_length(reader, max_len)? else {
        return Ok(false);
    };
    buf.clear();
    buf.reserve_exact(len);
    while buf.len() < len {
        match reader.read_appending(buf, len - buf.len()) {
            Ok(0) => return Err(cut_short(buf.len(), len)),
            Ok(_) => {}
            Err(e) => read_failed(e)?,
        }
    }
    Ok(true)
}

/// Reads one sealed frame message and opens it into `buf`, a chunk at a time: each is opened
/// as soon as it is in, from `scratch` while it is still in the cache, so the frame's bytes
/// cross memory once. `max_len` caps the opened message. Returns `Ok(false)` at a clean close
/// before the message.
pub fn read_sealed_frame<R: Read>(
    reader: &mut R,
    opener: &mut FrameOpener,
    scratch: &mut Vec<u8>,
    buf: &mut Vec<u8>,
    max_len: usize,
) -> Result<bool> {
    let Some(len) = read_length(reader, secure::sealed_frame_len(max_len))? else {
        return Ok(false);
    };
    let mut seq = [0u8; secure::FRAME_SEQ_LEN];
    let mut done = read_rest(reader, &mut seq, 0, len)?;
    let mut opening = opener.begin(seq, len)?;
    // A reused buffer is written over as it is; a new one is zeroed a chunk at a time, just
    // before that chunk is opened into it, while it is in the cache.
    buf.truncate(opening.plain_len());
    buf.reserve_exact(opening.plain_len() - buf.len());
    while done < len {
        let batch = (len - done).min(SEALED_READ_CHUNKS * secure::SEALED_CHUNK_LEN);
        scratch.resize(batch, 0);
        done = read_rest(reader, scratch, done, len)?;
        for sealed in scratch.chunks(secure::SEALED_CHUNK_LEN) {
            let Some(place) = opening.next_chunk() else {
                break;
            };
            if buf.len() < place.end {
                buf.resize(place.end, 0);
            }
            opener.open_chunk(&mut opening, sealed, &mut buf[place])?;
        }
    }
    Ok(true)
}

/// Sealed frame chunks read at once, then opened one by one: about 1 MiB, the receiver's
/// low-water mark, so a read wakes the thread as rarely as a clear frame's does, and the chunks
/// are still in the core's cache (1 MiB of L2 here) when opened. Measured with chunks written 8
/// at a time (raw 1920x1080 paired, fps): 4 chunks 814-841, 8 806-914, 16 854-900, 32 922-925.
const SEALED_READ_CHUNKS: usize = 16;

/// Sealed frame chunks sealed at once, then written: 512 KiB. Measured (raw 1920x1080 paired,
/// fps, the same run): 4 chunks 750-799, 8 870-882, 16 822-835; sealing the whole frame ahead
/// on the capture thread instead, 565-580, and the clear rate 782-813.
const SEALED_WRITE_CHUNKS: usize = 8;

/// A message's length prefix, refused over `max_len`; `None` at a clean close before it.
fn read_length<R: Read>(reader: &mut R, max_len: usize) -> Result<Option<usize>> {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    let got = read_fully(reader, &mut prefix)?;
    if got == 0 {
        return Ok(None);
    }
    if got < prefix.len() {
        bail!(
            "connection closed in the middle of a message (after {got} of {} length bytes)",
            prefix.len()
        );
    }
    Ok(Some(protocol::check_length(prefix, max_len)?))
}

/// Fills `part` of a message of `len` bytes, `done` of which came before it; returns how many
/// have come now.
fn read_rest<R: Read>(reader: &mut R, part: &mut [u8], done: usize, len: usize) -> Result<usize> {
    let got = read_fully(reader, part)?;
    if got < part.len() {
        return Err(cut_short(done + got, len));
    }
    Ok(done + got)
}

/// A message of `len` bytes whose connection closed after `got`.
fn cut_short(got: usize, len: usize) -> anyhow::Error {
    anyhow::anyhow!("connection closed in the middle of a message (after {got} of {len} bytes)")
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
            Err(e) => read_failed(e)?,
        }
    }
    Ok(filled)
}

/// What a failed read means: nothing (interrupted: read again), [`TimedOut`], or the error.
fn read_failed(e: std::io::Error) -> Result<()> {
    match e.kind() {
        ErrorKind::Interrupted => Ok(()),
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Err(TimedOut.into()),
        _ => Err(e.into()),
    }
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

    /// What it writes to, back.
    pub fn into_inner(self) -> W {
        self.inner
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

    /// Writes a frame message sealed by `sealer`, a few chunks at a time: each batch is sealed
    /// right before it is written, so the socket copies it while it is still in the cache.
    pub fn write_sealed_frame(
        &mut self,
        header: &FrameHeader,
        data: &[u8],
        sealer: &FrameSealer,
    ) -> Result<usize> {
        self.start();
        self.buf.extend_from_slice(&header.seq.to_le_bytes());
        let head_len = self.buf.len();
        protocol::encode_frame_prefix(header, data.len(), &mut self.buf)?;
        let plain_len = self.buf.len() - head_len + data.len();
        let sealed_len = secure::sealed_frame_len(plain_len);
        LittleEndian::write_u64(&mut self.buf[..LENGTH_PREFIX_LEN], sealed_len as u64);
        let (head, prefix) = self.buf.split_at(head_len);
        let chunks = secure::frame_chunks(plain_len);
        for first in (0..chunks).step_by(SEALED_WRITE_CHUNKS) {
            let batch = first..(first + SEALED_WRITE_CHUNKS).min(chunks);
            sealer.seal_chunks(header.seq, prefix, data, batch, &mut self.sealed)?;
            // The head goes with the first batch, not in a packet of its own.
            let head = if first == 0 { head } else { &[] };
            write_all_vectored(
                &mut self.inner,
                &mut [IoSlice::new(head), IoSlice::new(&self.sealed)],
            )?;
        }
        self.inner.flush().context("flushing")?;
        Ok(LENGTH_PREFIX_LEN + sealed_len)
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
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_frame_is_read_onto_a_new_buffer_or_over_a_reused_one_byte_for_byte() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut reader = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (writer, _) = listener.accept().unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let small = b"a shorter one".to_vec();
        let sent = std::thread::spawn(move || {
            let mut writer = MessageWriter::new(writer);
            writer.write_payload(&big).unwrap();
            writer.write_payload(&small).unwrap();
            // Cut inside a third: its prefix says 100 bytes, 3 come.
            let mut stream = writer.into_inner();
            stream.write_all(&100u64.to_le_bytes()).unwrap();
            stream.write_all(b"abc").unwrap();
            (big, small)
        });
        let mut buf = Vec::new();
        assert!(read_frame_payload(&mut reader, &mut buf, MAX_MESSAGE_LEN).unwrap());
        let first = buf.clone();
        assert!(read_frame_payload(&mut reader, &mut buf, MAX_MESSAGE_LEN).unwrap());
        let (big, small) = sent.join().unwrap();
        assert!(first == big, "the new buffer holds the message");
        assert_eq!(buf, small, "the reused one holds only the second");
        let err = read_frame_payload(&mut reader, &mut buf, MAX_MESSAGE_LEN).unwrap_err();
        assert!(
            err.to_string()
                .contains("connection closed in the middle of a message (after 3 of 100 bytes)"),
            "{err}"
        );
    }

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
    fn sealed_frames_written_in_batches_read_back_whole_and_a_cut_is_an_error() {
        let sealer = FrameSealer::generate().unwrap();
        let mut writer = MessageWriter::new(Vec::new());
        // Frames of one chunk, of a few write batches, and of a few read batches and a bit.
        let sizes = [
            3,
            SEALED_WRITE_CHUNKS * secure::FRAME_CHUNK_LEN * 2 + 5,
            2 << 20,
        ];
        let frames: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&len| (0..len).map(|i| (i % 253) as u8).collect())
            .collect();
        for (seq, data) in frames.iter().enumerate() {
            let written = writer
                .write_sealed_frame(&header(seq as u64), data, &sealer)
                .unwrap();
            assert_eq!(
                written,
                LENGTH_PREFIX_LEN + secure::sealed_frame_len(45 + data.len())
            );
        }
        let bytes = writer.into_inner();
        let read_all = |bytes: &[u8]| -> Result<Vec<Vec<u8>>> {
            let mut opener = FrameOpener::new(&sealer.key_bytes());
            let (mut scratch, mut buf, mut read) = (Vec::new(), Vec::new(), Vec::new());
            let mut reader = Cursor::new(bytes);
            while read_sealed_frame(&mut reader, &mut opener, &mut scratch, &mut buf, 3 << 20)? {
                read.push(buf.clone());
            }
            Ok(read)
        };
        let read = read_all(&bytes).unwrap();
        for (seq, (plain, data)) in read.iter().zip(&frames).enumerate() {
            let Message::Frame(frame) = protocol::decode(plain).unwrap() else {
                panic!("not a frame");
            };
            assert_eq!(frame.header, header(seq as u64));
            assert!(frame.data == data.as_slice());
        }
        assert_eq!(read.len(), frames.len());
        // Cut anywhere in the first frame and its successor's head, and on and around the
        // second's chunk boundaries and every 4 KiB between: never a clean end.
        let second = LENGTH_PREFIX_LEN + secure::sealed_frame_len(48);
        let boundaries = (0..4).map(|i| second + 16 + i * secure::SEALED_CHUNK_LEN);
        let cuts = (1..second + 40)
            .chain(boundaries.flat_map(|at| [at - 1, at, at + 1]))
            .chain((second..second + 3 * secure::SEALED_CHUNK_LEN).step_by(4099))
            .filter(|&cut| cut != second);
        for cut in cuts {
            let err = read_all(&bytes[..cut]).unwrap_err();
            assert!(
                err.to_string().contains("in the middle of a message"),
                "{cut}: {err}"
            );
        }
        // The cap is on the opened length: a frame longer than it is refused unread.
        let mut opener = FrameOpener::new(&sealer.key_bytes());
        let err = read_sealed_frame(
            &mut Cursor::new(&bytes),
            &mut opener,
            &mut Vec::new(),
            &mut Vec::new(),
            2,
        )
        .unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
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
