//! A receiver connected over TCP, as a sink: its handshake ([`crate::wire::handshake`]), then
//! frames from its slot, as many unacknowledged as its [`Window`](super::window::Window) allows
//! (about a round trip's worth), so neither a queue of ours nor the kernel's socket buffers can
//! hold old frames for it.

use super::flight::{stalled, Flight};
use super::{Hooks, Policy, SinkId, Sinks, Slot};
use crate::wire::handshake::{greet_viewer, Greeting};
use crate::wire::session::{AckReader, FrameWriter, ViewerSession};
use anyhow::{anyhow, Result};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

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
    pub fn join(stream: TcpStream, sinks: &Sinks) -> std::io::Result<TcpViewer> {
        stream.set_nonblocking(false)?;
        let hooks = Hooks::for_connection("receiver", None, &stream)?;
        let (id, slot) = sinks.join(Policy::Live, hooks);
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
    /// Its acks are read on a thread of their own, as they come: they give credit for the next
    /// frame, and when each came measures the viewer's path. `frame_interval` is the stream's.
    pub fn serve(
        &self,
        greeting: &Greeting,
        sinks: &Sinks,
        stall: Duration,
        frame_interval: Duration,
        connected: impl FnOnce(),
        frame_sent: impl FnMut(usize),
    ) -> Result<Ending> {
        let ViewerSession { mut acks, frames } = greet_viewer(&self.stream, greeting)?;
        // A write blocked this long with no byte taken is a stall (see `Flight::send`).
        self.stream.set_write_timeout(Some(stall))?;
        sinks.activate(self.id);
        connected();
        let flight = Flight::new(stall, frame_interval);
        thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let read = read_acks(&mut acks, &flight, &self.slot);
                // The writer may be waiting for credit, or for a frame: neither is coming.
                flight.reader_done();
                self.slot.close();
                read
            });
            let written = self.write_frames(frames, &flight, frame_sent);
            if matches!(written, Ok(Ending::StreamEnded)) {
                // The viewer closes its side once it has the last frame; its last acks are read
                // until then, so what it sends never meets a closed socket (which would reset
                // the connection, and the last frame with it).
                let _ = self.stream.shutdown(Shutdown::Write);
                let _ = self.stream.set_read_timeout(Some(Duration::from_secs(1)));
            } else if written.as_ref().is_err_and(|e| stalled(e).is_some()) {
                // A reset, not a clean end (no FIN): the receiver, once it wakes, reads a broken
                // connection and reconnects. Only the reading half is shut, to stop the ack
                // reader; the reset goes when the socket closes. If the linger cannot be set,
                // the receiver sees a close, and reconnects all the same.
                let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
                let _ = self.stream.shutdown(Shutdown::Read);
            } else {
                // Already closed is fine.
                let _ = self.stream.shutdown(Shutdown::Both);
            }
            let read = reader
                .join()
                .unwrap_or_else(|_| Err(anyhow!("its ack reader panicked")));
            match (written, read) {
                (Ok(Ending::StreamEnded), _) => Ok(Ending::StreamEnded),
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                (Ok(Ending::ViewerLeft), Ok(())) => Ok(Ending::ViewerLeft),
            }
        })
    }

    /// Sends frames from the slot, each when the viewer has room for it, until the stream ends
    /// or the viewer is gone.
    fn write_frames(
        &self,
        mut frames: FrameWriter<'_>,
        flight: &Flight,
        mut frame_sent: impl FnMut(usize),
    ) -> Result<Ending> {
        loop {
            // Credit first, then the frame: what is sent is the newest when the viewer can take it.
            if !flight.wait_for_room()? {
                return Ok(Ending::ViewerLeft);
            }
            let Some(frame) = self.slot.next() else {
                return Ok(match flight.is_reader_done() {
                    true => Ending::ViewerLeft,
                    false => Ending::StreamEnded,
                });
            };
            let bytes = flight.send(frame.header.seq, frame.data.len(), || {
                frames.send_frame(&frame.header, &frame.data)
            })?;
            frame_sent(bytes);
        }
    }
}

/// Reads the viewer's acks until it closes the connection (`Ok`) or breaks the protocol.
fn read_acks(acks: &mut AckReader<'_>, flight: &Flight, slot: &Slot) -> Result<()> {
    while let Some(ack) = acks.read_ack()? {
        slot.delivered(flight.acked(ack.seq)?);
        if ack.keyframe_wanted {
            slot.restart_at_keyframe();
        }
    }
    Ok(())
}
