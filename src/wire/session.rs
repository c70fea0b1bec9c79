//! A connection after its handshake: frames one way, acks the other, the same calls whether the
//! connection is paired (sealed) or in the clear. [`ViewerSession`] is the sender's side of one
//! viewer, [`SenderSession`] the receiver's side of its sender.

use super::connection::{MessageReader, MessageWriter};
use super::protocol::{self, Ack, FrameHeader, Message, StreamHello, MAX_ACK_LEN};
use super::secure::{self, Channel, FrameOpener, FrameSealer, FRAME_KEY_LEN};
use crate::lock;
use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};

/// How the messages of one direction travel.
pub(crate) enum AckSealing {
    Clear,
    Sealed(Channel),
}

/// Sealed frames kept for the other viewers: enough for viewers one or two frames apart.
const RECENT_SEALED: usize = 4;

/// Frames sealed once for every paired viewer: the first writer to send a frame seals it (with
/// the frame key every paired viewer was given), the others send the same bytes.
pub struct FrameSeals {
    sealer: FrameSealer,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    sealed: VecDeque<(u64, Arc<Vec<u8>>)>,
    prefix: Vec<u8>,
}

impl FrameSeals {
    pub(crate) fn new(sealer: FrameSealer) -> Self {
        FrameSeals {
            sealer,
            recent: Mutex::default(),
        }
    }

    pub(crate) fn key(&self) -> [u8; FRAME_KEY_LEN] {
        self.sealer.key_bytes()
    }

    /// Frame `header.seq` sealed (sequence number, sealed frame message, tag), sealed now if no
    /// viewer has sent it yet. Sealing the same frame twice gives the same bytes, so a viewer
    /// that asks for one already forgotten is merely slower.
    fn sealed(&self, header: &FrameHeader, data: &[u8]) -> Result<Arc<Vec<u8>>> {
        let mut recent = lock(&self.recent);
        if let Some((_, sealed)) = recent.sealed.iter().find(|(seq, _)| *seq == header.seq) {
            return Ok(Arc::clone(sealed));
        }
        // The oldest one's buffer is reused once no viewer holds it.
        let mut out = match recent.sealed.len() >= RECENT_SEALED {
            true => recent
                .sealed
                .pop_front()
                .and_then(|(_, old)| Arc::try_unwrap(old).ok())
                .unwrap_or_default(),
            false => Vec::new(),
        };
        let Recent { sealed, prefix } = &mut *recent;
        prefix.clear();
        protocol::encode_frame_prefix(header, data.len(), prefix)?;
        self.sealer.seal(header.seq, prefix, data, &mut out)?;
        let out = Arc::new(out);
        sealed.push_back((header.seq, Arc::clone(&out)));
        Ok(out)
    }
}

/// The sender's side of one viewer after the handshake.
pub struct ViewerSession<'s> {
    reader: MessageReader<&'s TcpStream>,
    writer: MessageWriter<&'s TcpStream>,
    acks: AckSealing,
    /// Paired: the seals its frames share with the other paired viewers.
    frame_seals: Option<Arc<FrameSeals>>,
}

impl<'s> ViewerSession<'s> {
    pub(crate) fn new(
        reader: MessageReader<&'s TcpStream>,
        writer: MessageWriter<&'s TcpStream>,
        acks: AckSealing,
        frame_seals: Option<Arc<FrameSeals>>,
    ) -> Self {
        ViewerSession {
            reader,
            writer,
            acks,
            frame_seals,
        }
    }

    /// The viewer's next ack, or `None` when it closed the connection cleanly.
    pub fn read_ack(&mut self) -> Result<Option<Ack>> {
        let payload = match &mut self.acks {
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

    /// Sends one frame; returns the bytes it took on the wire.
    pub fn send_frame(&mut self, header: &FrameHeader, data: &[u8]) -> Result<usize> {
        match &self.frame_seals {
            Some(seals) => {
                let sealed = seals.sealed(header, data)?;
                self.writer.write_payload(&sealed)
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
}

impl SenderSession {
    pub(crate) fn new(
        stream: TcpStream,
        hello: StreamHello,
        keys: Option<(FrameOpener, Channel)>,
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

    /// Tells the sender frame `seq` is done with (shown, or decoded when headless).
    pub fn ack(&mut self, seq: u64) -> Result<usize> {
        let ack = Message::Ack(Ack { seq });
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
