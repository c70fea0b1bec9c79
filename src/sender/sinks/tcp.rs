//! A receiver connected over TCP, as a sink: its handshake ([`crate::wire::handshake`]), then
//! frames from its slot, at most [`FRAMES_IN_FLIGHT`] unacknowledged, so neither a queue of ours
//! nor the kernel's socket buffers can hold old frames for it.

use super::{EncodedFrame, Policy, Prepare, SinkId, Sinks, Slot};
use crate::wire::handshake::{greet_viewer, Greeting};
use crate::wire::session::FrameSeals;
use anyhow::{bail, Result};
use std::collections::VecDeque;
use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Frames a viewer may hold unacknowledged. Two keep the link busy (one on the wire while the
/// viewer shows the other) without letting a queue of old frames build anywhere.
pub const FRAMES_IN_FLIGHT: u64 = 2;

/// How a viewer's stream ended, when nothing went wrong.
pub enum Ending {
    StreamEnded,
    ViewerLeft,
}

/// A viewer that has connected and is registered, its handshake still to come.
pub struct TcpViewer {
    stream: TcpStream,
    id: SinkId,
    slot: Arc<Slot>,
}

impl TcpViewer {
    /// Registers the connection with `sinks`; frames reach it once its handshake is done.
    pub fn join(
        stream: TcpStream,
        sinks: &Sinks,
        greeting: &Greeting,
    ) -> std::io::Result<TcpViewer> {
        stream.set_nonblocking(false)?;
        let handle = stream.try_clone()?;
        let disconnect = Box::new(move || {
            // Already closed is fine.
            let _ = handle.shutdown(Shutdown::Both);
        });
        // Paired: every frame is sealed once, ahead, for all viewers.
        let seal_ahead = greeting
            .frame_seals()
            .map(|seals| Arc::clone(seals) as Arc<dyn Prepare>);
        let (id, slot) = sinks.join(Policy::Newest, seal_ahead, disconnect);
        Ok(TcpViewer { stream, id, slot })
    }

    pub fn id(&self) -> SinkId {
        self.id
    }

    /// Frames it never got.
    pub fn skipped(&self) -> u64 {
        self.slot.skipped()
    }

    /// Greets the viewer, then sends it frames until the stream ends or it leaves. `connected`
    /// is called once the handshake is done, `frame_sent` with the bytes of each frame sent.
    pub fn serve(
        &self,
        greeting: &Greeting,
        sinks: &Sinks,
        connected: impl FnOnce(),
        mut frame_sent: impl FnMut(usize),
    ) -> Result<Ending> {
        let mut session = greet_viewer(&self.stream, greeting)?;
        sinks.activate(self.id);
        connected();
        // Frames sent and not yet acknowledged: sequence number and bytes.
        let mut in_flight: VecDeque<(u64, usize)> = VecDeque::new();
        loop {
            // Credit first, then the frame: what is sent is the newest when the viewer can take it.
            while in_flight.len() as u64 >= FRAMES_IN_FLIGHT {
                let Some(ack) = session.read_ack()? else {
                    return Ok(Ending::ViewerLeft);
                };
                if in_flight.back().is_none_or(|(last, _)| ack.seq > *last) {
                    bail!("it acknowledged frame {} before it was sent", ack.seq);
                }
                if ack.keyframe_wanted {
                    self.slot.restart_at_keyframe();
                }
                // The receiver acks every frame it shows, in order: this is the oldest.
                if let Some((_, bytes)) = in_flight.pop_front() {
                    self.slot.delivered(bytes);
                }
            }
            let Some(frame) = self.slot.next() else { break };
            let bytes = session.send_frame(&frame.header, &frame.data)?;
            frame_sent(bytes);
            in_flight.push_back((frame.header.seq, bytes));
        }
        close_gracefully(&self.stream);
        Ok(Ending::StreamEnded)
    }
}

impl Prepare for FrameSeals {
    fn prepare(&self, frame: &EncodedFrame) -> Result<()> {
        self.seal_ahead(&frame.header, &frame.data)
    }
}

/// Ends our side and waits briefly for the viewer to close its own, so the last frame is not
/// lost to a reset from unread data.
fn close_gracefully(stream: &TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 256];
    let mut reader = stream;
    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
}
