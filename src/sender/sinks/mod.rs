//! The sinks: everything on the sender that consumes encoded frames. The capture loop encodes a
//! frame once and offers the same `Arc` to every active sink's [`Slot`]; each slot's [`Policy`]
//! decides what a sink that is not ready loses, so a slow sink skips frames (counted) instead
//! of queueing old ones, and never slows the others. A TCP viewer ([`tcp`]) is one kind of
//! sink; the registry knows nothing of sockets, only how to cut a sink off.
//!
//! An empty slot is *demand*: an unpaced source makes a frame only when some sink has taken
//! its last one, so "as fast as possible" means as fast as the fastest viewer takes them, with
//! the next frame made while the viewer is busy with the last, and no CPU spent on frames
//! nobody will get.

pub mod browser;
pub mod flight;
pub mod mjpeg;
pub mod publish;
mod slot;
pub mod tcp;
pub mod window;

pub use slot::{Counters, Policy, Slot};

use crate::lock;
use crate::wire::protocol::FrameHeader;
use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};
use slot::Demand;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One encoded frame, shared by all sinks. Its buffer goes back to the pool when the last sink
/// is done with it, so the steady state allocates no frame buffers.
pub struct EncodedFrame {
    /// Its header, which says whether it is a keyframe.
    pub header: FrameHeader,
    /// The encoded picture.
    pub data: Vec<u8>,
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

    /// Wraps `data` as a frame whose buffer comes back here when it is done.
    pub fn frame(&self, header: FrameHeader, data: Vec<u8>) -> Arc<EncodedFrame> {
        Arc::new(EncodedFrame {
            header,
            data,
            recycle: self.give.clone(),
        })
    }
}

/// Work a kind of sink needs done once per frame, whichever of its sinks sends it: done on the
/// capture thread as the frame is published, so it overlaps the sending of the frame before
/// (paired viewers' frames are sealed this way).
pub trait Prepare: Send + Sync {
    fn prepare(&self, frame: &EncodedFrame) -> Result<()>;
}

/// A sink's place in the registry, given up when dropped.
pub struct Member<'a> {
    sinks: &'a Sinks,
    pub id: SinkId,
    pub slot: Arc<Slot>,
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        self.sinks.leave(self.id);
    }
}

/// Names a sink in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SinkId(pub u64);

/// What an active sink's counters say so far, and its link's when it can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feedback {
    pub id: SinkId,
    pub counters: Counters,
}

/// How the registry deals with one sink besides its slot.
pub struct Hooks {
    /// What kind of viewer it is, for `/metrics` ("receiver", "browser", "mjpeg", "snapshot").
    pub kind: &'static str,
    /// Done to each frame before it is offered (once for all sinks that share it).
    pub prepare: Option<Arc<dyn Prepare>>,
    /// Cuts the sink off when the stream ends and it does not leave by itself.
    pub disconnect: Box<dyn Fn() + Send + Sync>,
}

impl Hooks {
    /// The hooks of a viewer on `connection`: cut off by shutting the connection down.
    pub fn for_connection(
        kind: &'static str,
        prepare: Option<Arc<dyn Prepare>>,
        connection: &std::net::TcpStream,
    ) -> std::io::Result<Hooks> {
        let handle = connection.try_clone()?;
        Ok(Hooks {
            kind,
            prepare,
            disconnect: Box::new(move || {
                // Already closed is fine.
                let _ = handle.shutdown(std::net::Shutdown::Both);
            }),
        })
    }
}

struct Entry {
    id: SinkId,
    slot: Arc<Slot>,
    hooks: Hooks,
    /// Frames go to it from now on.
    active: bool,
}

#[derive(Default)]
struct Registry {
    entries: Vec<Entry>,
    closed: bool,
    next_id: u64,
}

/// Every sink the sender holds, from the moment it arrives (a viewer still in its handshake)
/// until it leaves.
#[derive(Default)]
pub struct Sinks {
    registry: Mutex<Registry>,
    demand: Arc<Demand>,
    left: Condvar,
}

impl Sinks {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    /// Registers a sink; it gets frames once [`Sinks::activate`] is called.
    pub fn join(&self, policy: Policy, hooks: Hooks) -> (SinkId, Arc<Slot>) {
        let slot = Arc::new(Slot::new(policy, Arc::clone(&self.demand)));
        let mut registry = self.lock();
        if registry.closed {
            slot.close();
        }
        let id = SinkId(registry.next_id);
        registry.next_id += 1;
        registry.entries.push(Entry {
            id,
            slot: Arc::clone(&slot),
            hooks,
            active: false,
        });
        (id, slot)
    }

    /// Registers a sink that leaves when the returned [`Member`] is dropped.
    pub fn member(&self, policy: Policy, hooks: Hooks) -> Member<'_> {
        let (id, slot) = self.join(policy, hooks);
        Member {
            sinks: self,
            id,
            slot,
        }
    }

    /// Starts offering frames to a sink, from the next frame on.
    pub fn activate(&self, id: SinkId) {
        for entry in self.lock().entries.iter_mut().filter(|e| e.id == id) {
            entry.active = true;
        }
        self.demand.signal();
    }

    pub fn leave(&self, id: SinkId) {
        self.lock().entries.retain(|e| e.id != id);
        self.left.notify_all();
    }

    /// Sinks receiving frames.
    pub fn active(&self) -> usize {
        self.lock().entries.iter().filter(|e| e.active).count()
    }

    /// Active sinks of each kind.
    pub fn kinds(&self) -> Vec<(&'static str, usize)> {
        let mut kinds: Vec<(&'static str, usize)> = Vec::new();
        for entry in self.lock().entries.iter().filter(|e| e.active) {
            match kinds.iter_mut().find(|(kind, _)| *kind == entry.hooks.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((entry.hooks.kind, 1)),
            }
        }
        kinds
    }

    /// A second registry whose empty slots are demand for the same source as this one's (the
    /// side JPEG encode's sinks wake an unpaced source too).
    pub fn sharing_demand(&self) -> Sinks {
        Sinks {
            registry: Mutex::default(),
            demand: Arc::clone(&self.demand),
            left: Condvar::new(),
        }
    }

    /// Sinks registered, including viewers still in their handshake.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits up to `timeout` for an active sink's slot to be empty; true if one is.
    pub fn wait_for_demand(&self, timeout: Duration) -> bool {
        let seen = self.demand.generation();
        if self.wants_frame() {
            return true;
        }
        self.demand.wait_past(seen, timeout);
        self.wants_frame()
    }

    fn wants_frame(&self) -> bool {
        self.any_active(Slot::wants_frame)
    }

    /// Whether some active sink's slot says `yes`.
    fn any_active(&self, yes: impl Fn(&Slot) -> bool) -> bool {
        let registry = self.lock();
        let any = registry.entries.iter().any(|e| e.active && yes(&e.slot));
        any
    }

    /// Every active sink's counters.
    pub fn feedback(&self) -> Vec<Feedback> {
        let registry = self.lock();
        let active = registry.entries.iter().filter(|e| e.active);
        active
            .map(|e| Feedback {
                id: e.id,
                counters: e.slot.counters(),
            })
            .collect()
    }

    /// Whether an active sink waits for a keyframe (the encoder should make one soon).
    pub fn wants_keyframe(&self) -> bool {
        self.any_active(Slot::wants_keyframe)
    }

    /// Prepares `frame` for the active sinks, then offers it to each; returns how many were
    /// offered it.
    pub fn publish(&self, frame: &Arc<EncodedFrame>) -> Result<usize> {
        let mut preparations: Vec<Arc<dyn Prepare>> = Vec::new();
        for entry in self.lock().entries.iter().filter(|e| e.active) {
            let Some(prepare) = &entry.hooks.prepare else {
                continue;
            };
            let known = preparations
                .iter()
                .any(|p| std::ptr::addr_eq(Arc::as_ptr(p), Arc::as_ptr(prepare)));
            if !known {
                preparations.push(Arc::clone(prepare));
            }
        }
        // Not under the lock: writers come and go meanwhile.
        for preparation in preparations {
            preparation.prepare(frame)?;
        }
        let registry = self.lock();
        let mut offered = 0;
        for entry in registry.entries.iter().filter(|e| e.active) {
            entry.slot.offer(Arc::clone(frame));
            offered += 1;
        }
        Ok(offered)
    }

    /// Asks every sink, present and future, to take what it holds and end cleanly.
    pub fn close_all(&self) {
        let mut registry = self.lock();
        registry.closed = true;
        for entry in &registry.entries {
            entry.slot.close();
        }
    }

    /// Whether the stream is ending ([`Sinks::close_all`]).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits until every sink has left, or `deadline`.
    pub fn wait_until_empty(&self, deadline: Instant) {
        let mut registry = self.lock();
        while !registry.entries.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            registry = match self.left.wait_timeout(registry, left) {
                Ok((registry, _)) => registry,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Cuts off the sinks still registered.
    pub fn disconnect_all(&self) {
        for entry in &self.lock().entries {
            (entry.hooks.disconnect)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::tests::sample_header;

    fn header(seq: u64) -> FrameHeader {
        FrameHeader {
            seq,
            ..sample_header()
        }
    }

    /// Frame `seq`, a keyframe or not, with one byte of data.
    pub(super) fn frame(seq: u64, keyframe: bool) -> Arc<EncodedFrame> {
        let header = FrameHeader {
            keyframe,
            ..header(seq)
        };
        BufferPool::new(1).frame(header, vec![seq as u8])
    }

    fn join(sinks: &Sinks) -> (SinkId, Arc<Slot>) {
        let hooks = Hooks {
            kind: "test",
            prepare: None,
            disconnect: Box::new(|| {}),
        };
        sinks.join(Policy::Live, hooks)
    }

    #[test]
    fn a_busy_viewer_gets_the_newest_frame_and_counts_the_rest() {
        let pool = BufferPool::new(4);
        let viewers = Sinks::default();
        let (id, slot) = join(&viewers);
        assert_eq!(
            viewers.publish(&pool.frame(header(0), vec![])).unwrap(),
            0,
            "not active yet"
        );
        viewers.activate(id);
        for seq in 0..5 {
            assert_eq!(
                viewers
                    .publish(&pool.frame(header(seq), vec![seq as u8]))
                    .unwrap(),
                1
            );
        }
        let frame = slot.next().unwrap();
        assert_eq!(frame.header.seq, 4);
        assert_eq!(slot.skipped(), 4);
        viewers.close_all();
        assert!(slot.next().is_none());
        viewers.leave(id);
        assert_eq!(viewers.len(), 0);
    }

    #[test]
    fn closing_still_delivers_the_last_frame() {
        let pool = BufferPool::new(4);
        let viewers = Sinks::default();
        let (id, slot) = join(&viewers);
        viewers.activate(id);
        viewers
            .publish(&pool.frame(header(9), vec![1, 2, 3]))
            .unwrap();
        viewers.close_all();
        assert_eq!(slot.next().unwrap().data, [1, 2, 3]);
        assert!(slot.next().is_none());
    }

    #[test]
    fn a_viewer_joining_after_close_is_closed() {
        let viewers = Sinks::default();
        viewers.close_all();
        assert!(join(&viewers).1.next().is_none());
    }

    #[test]
    fn an_empty_slot_is_demand() {
        let pool = BufferPool::new(4);
        let viewers = Arc::new(Sinks::default());
        let no_wait = Duration::from_millis(1);
        assert!(!viewers.wait_for_demand(no_wait), "nobody watches");
        let (id, slot) = join(&viewers);
        assert!(!viewers.wait_for_demand(no_wait), "not active yet");
        viewers.activate(id);
        assert!(viewers.wait_for_demand(no_wait));
        viewers.publish(&pool.frame(header(3), vec![])).unwrap();
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
        let frame = pool.frame(header(0), Vec::with_capacity(1000));
        drop(frame);
        assert!(pool.buffer().capacity() >= 1000);
    }

    #[test]
    fn leaving_wakes_a_wait_for_the_last_sink() {
        let sinks = Arc::new(Sinks::default());
        let (id, _slot) = join(&sinks);
        let leaver = {
            let sinks = Arc::clone(&sinks);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                sinks.leave(id);
            })
        };
        let started = Instant::now();
        sinks.wait_until_empty(started + Duration::from_secs(10));
        assert!(sinks.is_empty());
        assert!(started.elapsed() < Duration::from_secs(5));
        leaver.join().unwrap();
    }
}
