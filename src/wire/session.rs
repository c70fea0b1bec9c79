//! A connection after its handshake: frames one way, acks the other, the same calls whether the
//! connection is paired (sealed) or in the clear. [`ViewerSession`] is the sender's side of one
//! viewer, [`SenderSession`] the receiver's side of its sender.

use super::connection::{read_frame_payload, read_sealed_frame, AppendRead};
use super::connection::{MessageReader, MessageWriter};
use super::protocol::{self, Ack, FrameHeader, Message, StreamHello, MAX_ACK_LEN};
use super::secure::{self, Channel, FrameOpener, FrameSealer};
use anyhow::{Context, Result};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

/// How the messages of one direction travel.
pub(crate) enum AckSealing {
    Clear,
    Sealed(Channel),
}

/// The sender's side of one viewer after the handshake: its two directions, apart, so acks can
/// be read (on a thread of their own) as they come while frames go out.
pub struct ViewerSession<'s> {
    pub acks: AckReader<'s>,
    pub frames: FrameWriter<'s>,
}

/// Reads a viewer's acks.
pub struct AckReader<'s> {
    reader: MessageReader<&'s TcpStream>,
    sealing: AckSealing,
}

/// Sends a viewer its frames.
pub struct FrameWriter<'s> {
    writer: MessageWriter<&'s TcpStream>,
    /// Paired: the key its frames are sealed with, the same for every paired viewer.
    sealer: Option<Arc<FrameSealer>>,
}

impl<'s> ViewerSession<'s> {
    pub(crate) fn new(
        reader: MessageReader<&'s TcpStream>,
        writer: MessageWriter<&'s TcpStream>,
        sealing: AckSealing,
        sealer: Option<Arc<FrameSealer>>,
    ) -> Self {
        ViewerSession {
            acks: AckReader { reader, sealing },
            frames: FrameWriter { writer, sealer },
        }
    }
}

impl AckReader<'_> {
    /// The viewer's next ack, or `None` when it closed the connection cleanly.
    pub fn read_ack(&mut self) -> Result<Option<Ack>> {
        let payload = match &mut self.sealing {
            AckSealing::Sealed(channel) => self.reader.read_sealed(MAX_ACK_LEN, channel),
            AckSealing::Clear => self.reader.read_payload(MAX_ACK_LEN),
        };
        let Some(payload) = payload.context("waiting for its ack")? else {
            return Ok(None);
        };
        Ok(Some(
            protocol::decode_ack(payload).context("reading its ack")?,
        ))
    }
}

impl FrameWriter<'_> {
    /// Sends one frame; returns the bytes it took on the wire.
    pub fn send_frame(&mut self, header: &FrameHeader, data: &[u8]) -> Result<usize> {
        match &self.sealer {
            Some(sealer) => self.writer.write_sealed_frame(header, data, sealer),
            None => self.writer.write_frame(header, data),
        }
    }
}

/// The receiver's side of its sender after the handshake.
pub struct SenderSession {
    stream: TcpStream,
    pub hello: StreamHello,
    /// What reads its frames, until a reader thread takes it.
    frames: Option<FrameReader>,
    acks: MessageWriter<TcpStream>,
    ack_sealing: AckSealing,
    /// The sender's clock minus ours, in microseconds (from the handshake's clock reading).
    pub clock_offset_us: i64,
}

/// Reads a sender's frame messages, opened when paired, each into a buffer the caller reuses.
pub struct FrameReader {
    /// Paired: what frames are opened with.
    opener: Option<FrameOpener>,
    /// The longest frame message the stream's hello allows (opened).
    max_len: usize,
    /// A sealed chunk as read, before it is opened.
    scratch: Vec<u8>,
}

impl FrameReader {
    /// The next frame message into `buf` (opened when paired), still to be decoded and checked;
    /// `false` at a clean end of the stream.
    pub fn read<R: AppendRead>(&mut self, reader: &mut R, buf: &mut Vec<u8>) -> Result<bool> {
        match &mut self.opener {
            Some(opener) => read_sealed_frame(reader, opener, &mut self.scratch, buf, self.max_len),
            None => read_frame_payload(reader, buf, self.max_len),
        }
    }
}

impl SenderSession {
    pub(crate) fn new(
        stream: TcpStream,
        hello: StreamHello,
        keys: Option<(FrameOpener, Channel)>,
        clock_offset_us: i64,
    ) -> Result<Self> {
        let acks = MessageWriter::new(stream.try_clone().context("setting up the connection")?);
        let (opener, ack_sealing) = match keys {
            Some((opener, channel)) => (Some(opener), AckSealing::Sealed(channel)),
            None => (None, AckSealing::Clear),
        };
        Ok(SenderSession {
            stream,
            hello,
            frames: Some(FrameReader {
                opener,
                max_len: hello.max_message_len(),
                scratch: Vec::new(),
            }),
            acks,
            ack_sealing,
            clock_offset_us,
        })
    }

    pub fn is_paired(&self) -> bool {
        matches!(self.ack_sealing, AckSealing::Sealed(_))
    }

    /// The bytes a frame message of `plain_len` bytes took on the wire: its length prefix, and
    /// its sealing when paired.
    pub fn wire_len(&self, plain_len: usize) -> usize {
        let message = match self.is_paired() {
            true => secure::sealed_frame_len(plain_len),
            false => plain_len,
        };
        protocol::LENGTH_PREFIX_LEN + message
    }

    /// Another handle on the connection, and what reads frames from it: for the thread that
    /// reads frames (one per session).
    pub fn frame_reader(&mut self) -> Result<(TcpStream, FrameReader)> {
        let frames = self
            .frames
            .take()
            .context("the session's frames already have a reader")?;
        let stream = self
            .stream
            .try_clone()
            .context("setting up the connection")?;
        Ok((stream, frames))
    }

    /// Tells the sender frame `seq` is done with (shown, or decoded when headless), and, when
    /// it did not decode, that a keyframe is wanted.
    pub fn ack(&mut self, seq: u64, keyframe_wanted: bool) -> Result<usize> {
        let ack = Message::Ack(Ack {
            seq,
            keyframe_wanted,
        });
        match &mut self.ack_sealing {
            AckSealing::Sealed(channel) => self.acks.write_sealed(&ack, channel),
            AckSealing::Clear => self.acks.write_message(&ack),
        }
    }

    /// Ends the connection both ways, waking a thread blocked reading it.
    pub fn close(&self) {
        // Already closed is fine.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
