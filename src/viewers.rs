//! The sink side of the sender: every connected viewer gets its own "newest frame" slot and its
//! own writer thread. The capture loop encodes a frame once and puts the same `Arc` in every slot;
//! a viewer still busy with an older frame finds it replaced (counted as skipped), so a slow
//! viewer sees fresh frames late rather than old frames later, and never slows the others.
//!
//! An empty slot is *demand*: an unpaced source makes a frame only when some viewer has taken
//! its last one, so "as fast as possible" means as fast as the fastest viewer takes them, with
//! the next frame made while the viewer is busy with the last, and no CPU spent on frames
//! nobody will get.

use crate::protocol::FrameHeader;
use crossbeam_channel::{Receiver, Sender};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Wakes the capture loop when a writer takes a frame. A counter, not a flag, so a
/// wake-up between the capture loop's look at the slots and its wait is not lost.
#[derive(Default)]
struct Demand {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Demand {
    fn lock(&self) -> MutexGuard<'_, u64> {
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn signal(&self) {
        *self.lock() += 1;
        self.changed.notify_all();
    }

    /// Waits until the generation moves past `seen`, or `timeout`.
    fn wait_past(&self, seen: u64, timeout: Duration) {
        let guard = self.lock();
        // A timeout or a poisoned lock both just mean: look at the slots again.
        let _ = self
            .changed
            .wait_timeout_while(guard, timeout, |generation| *generation == seen);
    }
}

/// One encoded frame, shared by all viewers. Its buffer goes back to the pool when the last
/// viewer is done with it, so the steady state allocates no frame buffers.
pub struct EncodedFrame {
    pub header: FrameHeader,
    /// The encoded picture or, when `sealed`, the whole frame message sealed for paired viewers.
    pub data: Vec<u8>,
    pub sealed: bool,
    recycle: Sender<Vec<u8>>,
}

impl Drop for EncodedFrame {
    fn drop(&mut self) {
        // A full pool just lets this buffer be freed.
        let _ = self.recycle.try_send(std::mem::take(&mut self.data));
    }
}

/// Reusable frame buffers.
pub struct BufferPool {
    give: Sender<Vec<u8>>,
    take: Receiver<Vec<u8>>,
}

impl BufferPool {
    pub fn new(capacity: usize) -> Self {
        let (give, take) = crossbeam_channel::bounded(capacity);
        BufferPool { give, take }
    }

    /// A previous frame's buffer when one is free (its old contents left in place, for a source
    /// that can update them), or a new empty one.
    pub fn buffer(&self) -> Vec<u8> {
        self.take.try_recv().unwrap_or_default()
    }

    /// Wraps `data` (sealed or not) as a frame whose buffer comes back here when it is done.
    pub fn frame(&self, header: FrameHeader, data: Vec<u8>, sealed: bool) -> Arc<EncodedFrame> {
        Arc::new(EncodedFrame {
            header,
            data,
            sealed,
            recycle: self.give.clone(),
        })
    }

    /// Gives a buffer back at once.
    pub fn recycle(&self, buffer: Vec<u8>) {
        let _ = self.give.try_send(buffer);
    }
}

#[derive(Default)]
struct SlotState {
    next: Option<Arc<EncodedFrame>>,
    closing: bool,
}

/// A viewer's mailbox of size one.
pub struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
    skipped: AtomicU64,
    demand: Arc<Demand>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // A writer thread that panicked left plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn offer(&self, frame: Arc<EncodedFrame>) {
        if self.lock().next.replace(frame).is_some() {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    fn close(&self) {
        self.lock().closing = true;
        self.ready.notify_one();
    }

    /// The newest frame not yet taken; `None` once the stream is closing and nothing is left.
    pub fn next(&self) -> Option<Arc<EncodedFrame>> {
        let mut state = self.lock();
        loop {
            if let Some(frame) = state.next.take() {
                drop(state);
                self.demand.signal();
                return Some(frame);
            }
            if state.closing {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn wants_frame(&self) -> bool {
        let state = self.lock();
        state.next.is_none() && !state.closing
    }

    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

struct Viewer {
    peer: SocketAddr,
    slot: Arc<Slot>,
    /// A handle on the socket, to unblock a writer stuck on a viewer that stopped reading.
    socket: TcpStream,
    /// Handshake done: frames go to it from now on.
    active: bool,
}

#[derive(Default)]
struct ViewerList {
    viewers: Vec<Viewer>,
    closed: bool,
}

/// Every connection the sender holds, from accept to goodbye.
#[derive(Default)]
pub struct Viewers {
    list: Mutex<ViewerList>,
    demand: Arc<Demand>,
}

impl Viewers {
    fn lock(&self) -> MutexGuard<'_, ViewerList> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection; it gets frames once [`Viewers::activate`] is called.
    pub fn join(&self, peer: SocketAddr, socket: TcpStream) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            state: Mutex::default(),
            ready: Condvar::new(),
            skipped: AtomicU64::new(0),
            demand: Arc::clone(&self.demand),
        });
        let mut list = self.lock();
        if list.closed {
            slot.close();
        }
        list.viewers.push(Viewer {
            peer,
            slot: Arc::clone(&slot),
            socket,
            active: false,
        });
        slot
    }

    /// Starts sending to a viewer that finished its handshake, from the next frame on.
    pub fn activate(&self, peer: SocketAddr) {
        for viewer in self.lock().viewers.iter_mut().filter(|v| v.peer == peer) {
            viewer.active = true;
        }
        self.demand.signal();
    }

    pub fn leave(&self, peer: SocketAddr) {
        self.lock().viewers.retain(|v| v.peer != peer);
    }

    /// Viewers receiving frames.
    pub fn active(&self) -> usize {
        self.lock().viewers.iter().filter(|v| v.active).count()
    }

    /// Connections, including those still in their handshake.
    pub fn connections(&self) -> usize {
        self.lock().viewers.len()
    }

    /// Waits up to `timeout` for an active viewer's slot to be empty; true if one is.
    pub fn wait_for_demand(&self, timeout: Duration) -> bool {
        let seen = *self.demand.lock();
        if self.wants_frame() {
            return true;
        }
        self.demand.wait_past(seen, timeout);
        self.wants_frame()
    }

    fn wants_frame(&self) -> bool {
        let list = self.lock();
        let wants = list
            .viewers
            .iter()
            .any(|v| v.active && v.slot.wants_frame());
        wants
    }

    /// Hands `frame` to every active viewer; returns how many got it.
    pub fn publish(&self, frame: &Arc<EncodedFrame>) -> usize {
        let list = self.lock();
        let mut given = 0;
        for viewer in list.viewers.iter().filter(|v| v.active) {
            viewer.slot.offer(Arc::clone(frame));
            given += 1;
        }
        given
    }

    /// Asks every writer, present and future, to send what it holds and end its stream cleanly.
    pub fn close_all(&self) {
        let mut list = self.lock();
        list.closed = true;
        for viewer in &list.viewers {
            viewer.slot.close();
        }
    }

    /// Cuts the connections still open (viewers that stopped reading, or never said hello).
    pub fn disconnect_all(&self) {
        for viewer in &self.lock().viewers {
            // Already closed is fine.
            let _ = viewer.socket.shutdown(Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Codec, PixelFormat};
    use std::net::TcpListener;

    fn header(seq: u64) -> FrameHeader {
        FrameHeader {
            seq,
            capture_unix_us: 0,
            width: 1,
            height: 1,
            pixel_format: PixelFormat::Bgr8,
            codec: Codec::Raw,
        }
    }

    fn socket() -> (TcpStream, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let addr = client.local_addr().unwrap();
        (client, addr)
    }

    #[test]
    fn a_busy_viewer_gets_the_newest_frame_and_counts_the_rest() {
        let pool = BufferPool::new(4);
        let viewers = Viewers::default();
        let (sock, peer) = socket();
        let slot = viewers.join(peer, sock);
        assert_eq!(
            viewers.publish(&pool.frame(header(0), vec![], false)),
            0,
            "not active yet"
        );
        viewers.activate(peer);
        for seq in 0..5 {
            assert_eq!(
                viewers.publish(&pool.frame(header(seq), vec![seq as u8], false)),
                1
            );
        }
        let frame = slot.next().unwrap();
        assert_eq!(frame.header.seq, 4);
        assert_eq!(slot.skipped(), 4);
        viewers.close_all();
        assert!(slot.next().is_none());
        viewers.leave(peer);
        assert_eq!(viewers.connections(), 0);
    }

    #[test]
    fn closing_still_delivers_the_last_frame() {
        let pool = BufferPool::new(4);
        let viewers = Viewers::default();
        let (sock, peer) = socket();
        let slot = viewers.join(peer, sock);
        viewers.activate(peer);
        viewers.publish(&pool.frame(header(9), vec![1, 2, 3], false));
        viewers.close_all();
        assert_eq!(slot.next().unwrap().data, [1, 2, 3]);
        assert!(slot.next().is_none());
    }

    #[test]
    fn a_viewer_joining_after_close_is_closed() {
        let viewers = Viewers::default();
        viewers.close_all();
        let (sock, peer) = socket();
        assert!(viewers.join(peer, sock).next().is_none());
    }

    #[test]
    fn an_empty_slot_is_demand() {
        let pool = BufferPool::new(4);
        let viewers = Arc::new(Viewers::default());
        let no_wait = Duration::from_millis(1);
        assert!(!viewers.wait_for_demand(no_wait), "nobody watches");
        let (sock, peer) = socket();
        let slot = viewers.join(peer, sock);
        assert!(!viewers.wait_for_demand(no_wait), "not active yet");
        viewers.activate(peer);
        assert!(viewers.wait_for_demand(no_wait));
        viewers.publish(&pool.frame(header(3), vec![], false));
        assert!(!viewers.wait_for_demand(no_wait), "its frame is waiting");
        let waiter = {
            let viewers = Arc::clone(&viewers);
            std::thread::spawn(move || viewers.wait_for_demand(Duration::from_secs(10)))
        };
        assert_eq!(slot.next().unwrap().header.seq, 3);
        assert!(
            waiter.join().unwrap(),
            "taking the frame wakes the capture loop"
        );
    }

    #[test]
    fn buffers_are_recycled() {
        let pool = BufferPool::new(4);
        let frame = pool.frame(header(0), Vec::with_capacity(1000), false);
        drop(frame);
        assert!(pool.buffer().capacity() >= 1000);
    }
}
