//! A connection after its handshake: frames one way, acks the other, the same calls whether the
//! connection is paired (sealed) or in the clear. [`ViewerSession`] is the sender's side of one
//! viewer, [`SenderSession`] the receiver's side of its sender.

use super::connection::{MessageReader, MessageWriter};
use super::protocol::{self, Ack, FrameHeader, Message, StreamHello, MAX_ACK_LEN};
use super::secure::{self, Channel, FrameOpener, FrameSealer, FRAME_KEY_LEN};
use crate::lock;
use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use std::collections::VecDeque;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};

/// How the messages of one direction travel.
pub(crate) enum AckSealing {
    Clear,
    Sealed(Channel),
}

/// Sealed frames kept for the other viewers: enough for viewers one or two frames apart.
const RECENT_SEALED: usize = 2;

/// Frames sealed once for every paired viewer, with the frame key each was given. The sender's
/// capture loop seals each frame as it publishes it ([`FrameSeals::seal_ahead`]), so sealing one
/// frame overlaps sending the last; a writer finds it here and sends the same bytes. A frame no
/// longer here (a viewer far behind) is sealed again: the same frame gives the same bytes.
pub struct FrameSeals {
    sealer: FrameSealer,
    recent: Mutex<VecDeque<(u64, Arc<SealedFrame>)>>,
    /// Buffers of sealed frames nobody holds any more.
    spare: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
}

/// A frame message sealed: its sequence number, the sealed message, the tag. Its buffer goes
/// back to be reused when the last writer is done with it.
struct SealedFrame {
    bytes: Vec<u8>,
    give_back: Sender<Vec<u8>>,
}

impl Drop for SealedFrame {
    fn drop(&mut self) {
        // No room: the buffer is simply freed.
        let _ = self.give_back.try_send(std::mem::take(&mut self.bytes));
    }
}

impl FrameSeals {
    pub(crate) fn new(sealer: FrameSealer) -> Self {
        FrameSeals {
            sealer,
            recent: Mutex::default(),
            spare: crossbeam_channel::bounded(2 * RECENT_SEALED),
        }
    }

    pub(crate) fn key(&self) -> [u8; FRAME_KEY_LEN] {
        self.sealer.key_bytes()
    }

    /// Seals frame `header.seq` now, before a writer asks for it.
    pub fn seal_ahead(&self, header: &FrameHeader, data: &[u8]) -> Result<()> {
        self.sealed(header, data).map(drop)
    }

    /// Frame `header.seq` sealed, sealed now unless it already is. The lock is not held while
    /// sealing, so a writer after another frame is not kept waiting.
    fn sealed(&self, header: &FrameHeader, data: &[u8]) -> Result<Arc<SealedFrame>> {
        if let Some(sealed) = self.find(header.seq) {
            return Ok(sealed);
        }
        let mut prefix = Vec::new();
        protocol::encode_frame_prefix(header, data.len(), &mut prefix)?;
        let mut bytes = self.spare.1.try_recv().unwrap_or_default();
        self.sealer.seal(header.seq, &prefix, data, &mut bytes)?;
        let sealed = Arc::new(SealedFrame {
            bytes,
            give_back: self.spare.0.clone(),
        });
        let mut recent = lock(&self.recent);
        if recent.len() >= RECENT_SEALED {
            recent.pop_front();
        }
        recent.push_back((header.seq, Arc::clone(&sealed)));
        Ok(sealed)
    }

    fn find(&self, seq: u64) -> Option<Arc<SealedFrame>> {
        let recent = lock(&self.recent);
        let found = recent.iter().find(|(sealed, _)| *sealed == seq);
        found.map(|(_, sealed)| Arc::clone(sealed))
    }
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
    /// Paired: the seals its frames share with the other paired viewers.
    frame_seals: Option<Arc<FrameSeals>>,
}

impl<'s> ViewerSession<'s> {
    pub(crate) fn new(
        reader: MessageReader<&'s TcpStream>,
        writer: MessageWriter<&'s TcpStream>,
        sealing: AckSealing,
        frame_seals: Option<Arc<FrameSeals>>,
    ) -> Self {
        ViewerSession {
            acks: AckReader { reader, sealing },
            frames: FrameWriter {
                writer,
                frame_seals,
            },
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
        match &self.frame_seals {
            Some(seals) => {
                let sealed = seals.sealed(header, data)?;
                self.writer.write_payload(&sealed.bytes)
            }
            None => self.writer.write_frame(header, data),
        }
    }
}

/// The receiver's side of its sender after the handshake.
pub struct SenderSession {
    stream: TcpStream,
    pub hello: StreamHello,
    /// Paired: what frames are opened with.
    frames: Option<FrameOpener>,
    acks: MessageWriter<TcpStream>,
    ack_sealing: AckSealing,
    /// The sender's clock minus ours, in microseconds (from the handshake's clock reading).
    pub clock_offset_us: i64,
}

impl SenderSession {
    pub(crate) fn new(
        stream: TcpStream,
        hello: StreamHello,
        keys: Option<(FrameOpener, Channel)>,
        clock_offset_us: i64,
    ) -> Result<Self> {
        let acks = MessageWriter::new(stream.try_clone().context("setting up the connection")?);
        let (frames, ack_sealing) = match keys {
            Some((opener, channel)) => (Some(opener), AckSealing::Sealed(channel)),
            None => (None, AckSealing::Clear),
        };
        Ok(SenderSession {
            stream,
            hello,
            frames,
            acks,
            ack_sealing,
            clock_offset_us,
        })
    }

    pub fn is_paired(&self) -> bool {
        self.frames.is_some()
    }

    /// The longest frame message this stream can send, sealed or not.
    pub fn max_message_len(&self) -> usize {
        match self.frames {
            Some(_) => self.hello.max_message_len() + secure::FRAME_OVERHEAD,
            None => self.hello.max_message_len(),
        }
    }

    /// Another handle on the connection, for the thread that reads frames.
    pub fn reader(&self) -> Result<TcpStream> {
        self.stream.try_clone().context("setting up the connection")
    }

    /// A frame message as read (sealed when paired) opened in place; returns its plaintext,
    /// still to be decoded and checked.
    pub fn open_frame<'b>(&mut self, payload: &'b mut [u8]) -> Result<&'b [u8]> {
        match self.frames.as_mut() {
            Some(opener) => {
                let plain = opener.open(payload)?;
                Ok(&payload[plain])
            }
            None => Ok(payload),
        }
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
