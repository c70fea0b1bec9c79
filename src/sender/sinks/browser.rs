//! A browser tab watching the page, as a sink, over a WebSocket ([`crate::wire::web`]). An
//! H.264 stream goes to a page that can play it through Media Source Extensions as fragmented
//! MP4, muxed once per frame for all such tabs ([`Fragments`], their [`Prepare`] step); any
//! other page gets JPEG frames (for an H.264 or raw stream from the side JPEG encode). Like a
//! receiver, a tab acks each frame it showed and has at most its [`Window`](super::window::Window)
//! unacked (about a round trip's worth), so a stalled tab skips frames and slows nobody.
//!
//! A WebSocket over TLS cannot be split into a reading and a writing half, so the writer and
//! the ack reader share it behind a lock: the reader waits for bytes without the lock
//! (`poll`), then takes it and reads what came without blocking.

use super::flight::Flight;
use super::window::frame_interval;
use super::{EncodedFrame, Hooks, Member, Policy, Prepare, Sinks};
use crate::media::codec::Stored;
use crate::media::fmp4::Fragmenter;
use crate::wire::protocol::unix_micros;
use crate::wire::web::{frame_head, PageMessage, Payload, SenderMessage, StreamInfo};
use crate::{lock, net};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};
use tungstenite::{Message, WebSocket};

/// How long a page has to say how it wants frames, and the stream to give its first keyframe.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Fragments kept for the tabs that have yet to send them.
const RECENT_FRAGMENTS: usize = 64;

/// The stream as the page is told it.
pub struct StreamFacts {
    pub codec: &'static str,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
}

/// Where a tab's frames come from.
pub struct Feeds<'a> {
    /// The stream's own encode.
    pub main: &'a Sinks,
    /// JPEG frames: `main` itself for a JPEG stream, else the side encode's sinks.
    pub jpeg: &'a Sinks,
    /// For an H.264 stream, its fragments for Media Source Extensions.
    pub fragments: Option<&'a Arc<Fragments>>,
}

/// What one tab did, for the sender's counters.
pub trait Tally {
    fn frame_sent(&self, bytes: usize);
    fn latency(&self, microseconds: f64);
}

/// Serves one tab over `ws` (whose connection is `tcp`) until the stream ends or the tab goes;
/// a tab that takes nothing for `stall` is cut off. Returns the frames it got and those it
/// never got.
pub fn serve<S: Read + Write + Send>(
    ws: WebSocket<S>,
    tcp: &TcpStream,
    stream: &StreamFacts,
    feeds: &Feeds<'_>,
    stall: Duration,
    tally: &(impl Tally + Sync),
) -> Result<(u64, u64)> {
    tcp.set_write_timeout(Some(stall))?;
    tcp.set_read_timeout(Some(START_TIMEOUT))?;
    let socket = Socket {
        ws: Mutex::new(ws),
        tcp,
    };
    // An H.264 stream's MIME type is known from its first keyframe: join for fragments first.
    let mut member = None;
    let mut first = None;
    let mut mime = None;
    if let Some(fragments) = feeds.fragments {
        let joined = join(
            feeds.main,
            tcp,
            Some(Arc::clone(fragments) as Arc<dyn Prepare>),
        )?;
        feeds.main.activate(joined.id);
        first = joined.slot.next_within(Some(START_TIMEOUT));
        mime = fragments.mime();
        member = Some(joined);
    }
    let info = StreamInfo {
        codec: stream.codec,
        width: stream.width,
        height: stream.height,
        fps: stream.fps,
        mime: mime.as_deref(),
    };
    socket.send_text(&SenderMessage::Stream(info))?;
    let mse = socket.read_start()? && mime.is_some();
    let member = match (mse, member) {
        (true, Some(member)) => member,
        _ => {
            first = None;
            let member = join(feeds.jpeg, tcp, None)?;
            feeds.jpeg.activate(member.id);
            member
        }
    };
    // From now on the reader waits for bytes in `poll`, and reads without blocking.
    tcp.set_read_timeout(Some(Duration::from_millis(1)))?;
    let flight = Flight::new(stall, frame_interval(stream.fps));
    let fragments = feeds.fragments.filter(|_| mse);
    thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let read = socket.read_acks(&flight, &member, tally);
            flight.reader_done();
            member.slot.close();
            read
        });
        let written = write_frames(&socket, &member, &flight, first, fragments, tally);
        // Already closed is fine.
        let _ = tcp.shutdown(Shutdown::Both);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(anyhow!("its ack reader panicked")));
        written.and_then(|sent| read.map(|()| sent))
    })
    .map(|sent| (sent, member.slot.skipped()))
}

/// Registers a tab with `sinks`; it leaves when the member is dropped.
fn join<'a>(
    sinks: &'a Sinks,
    tcp: &TcpStream,
    prepare: Option<Arc<dyn Prepare>>,
) -> Result<Member<'a>> {
    Ok(sinks.member(
        Policy::Live,
        Hooks::for_connection("browser", prepare, tcp)?,
    ))
}

/// Sends frames from the slot, each when the tab has room for it.
fn write_frames(
    socket: &Socket<impl Read + Write>,
    member: &Member<'_>,
    flight: &Flight,
    mut first: Option<Arc<EncodedFrame>>,
    fragments: Option<&Arc<Fragments>>,
    tally: &impl Tally,
) -> Result<u64> {
    let mut sent = 0;
    let mut init_sent = false;
    let mut message = Vec::new();
    loop {
        if !flight.wait_for_room()? {
            return Ok(sent);
        }
        let Some(frame) = first.take().or_else(|| member.slot.next()) else {
            return Ok(sent);
        };
        let header = &frame.header;
        let payload = match fragments {
            Some(fragments) => {
                let Some((init, fragment)) = fragments.get(header.seq) else {
                    // Muxed before this tab could send it: start again from a keyframe.
                    member.slot.restart_at_keyframe();
                    continue;
                };
                if !init_sent {
                    frame_head(&mut message, Payload::Init, 0, init.origin_us, true);
                    message.extend_from_slice(&init.bytes);
                    socket.send(Message::Binary(std::mem::take(&mut message).into()))?;
                    init_sent = true;
                }
                frame_head(
                    &mut message,
                    Payload::Fragment,
                    header.seq,
                    header.capture_unix_us,
                    header.keyframe,
                );
                message.extend_from_slice(&fragment);
                message.len()
            }
            None => {
                frame_head(
                    &mut message,
                    Payload::Jpeg,
                    header.seq,
                    header.capture_unix_us,
                    true,
                );
                message.extend_from_slice(&frame.data);
                message.len()
            }
        };
        let binary = Message::Binary(std::mem::take(&mut message).into());
        flight.send(header.seq, payload, || socket.send(binary))?;
        tally.frame_sent(payload);
        sent += 1;
    }
}

/// The tab's WebSocket, shared by its writer and its ack reader.
struct Socket<'a, S> {
    ws: Mutex<WebSocket<S>>,
    tcp: &'a TcpStream,
}

impl<S: Read + Write> Socket<'_, S> {
    fn send(&self, message: Message) -> Result<()> {
        lock(&self.ws).send(message).context("sending to the page")
    }

    fn send_text(&self, message: &SenderMessage<'_>) -> Result<()> {
        self.send(Message::text(serde_json::to_string(message)?))
    }

    /// Reads until the page says how it wants frames (answering its clock readings meanwhile).
    fn read_start(&self) -> Result<bool> {
        loop {
            let message = lock(&self.ws).read();
            match message {
                Ok(Message::Text(text)) => {
                    match PageMessage::parse(&text).map_err(|e| anyhow!(e))? {
                        PageMessage::Start { mse } => return Ok(mse),
                        PageMessage::Clock { t1 } => self.answer_clock(t1)?,
                        PageMessage::Ack { .. } | PageMessage::Unshown { .. } => {
                            bail!("the page reported on frames before it asked for any")
                        }
                    }
                }
                Ok(Message::Close(_)) => bail!("the page closed before it asked for frames"),
                Ok(_) => {}
                Err(e) => return Err(anyhow!(e).context("waiting for the page to ask for frames")),
            }
        }
    }

    fn answer_clock(&self, t1: f64) -> Result<()> {
        let t2 = unix_micros(SystemTime::now());
        self.send_text(&SenderMessage::Clock {
            t1,
            t2,
            t3: unix_micros(SystemTime::now()),
        })
    }

    /// Reads the page's acks and clock readings until it closes (`Ok`) or breaks the protocol.
    fn read_acks(&self, flight: &Flight, member: &Member<'_>, tally: &impl Tally) -> Result<()> {
        loop {
            if !self.wait_readable(flight) {
                return Ok(());
            }
            loop {
                let message = lock(&self.ws).read();
                let text = match message {
                    Ok(Message::Text(text)) => text,
                    Ok(Message::Close(_)) => return Ok(()),
                    Ok(_) => continue,
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        break
                    }
                    Err(
                        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                    ) => return Ok(()),
                    Err(e) => return Err(anyhow!(e).context("reading the page's acks")),
                };
                match PageMessage::parse(&text).map_err(|e| anyhow!(e))? {
                    PageMessage::Ack { seq, latency_us } => {
                        member.slot.delivered(flight.acked(seq)?);
                        if let Some(latency) = latency_us.filter(|l| l.is_finite()) {
                            tally.latency(latency);
                        }
                    }
                    PageMessage::Unshown { frames } => member.slot.unshown(frames),
                    PageMessage::Clock { t1 } => self.answer_clock(t1)?,
                    PageMessage::Start { .. } => {}
                }
            }
        }
    }

    /// Waits without the lock until the page has sent something; false once the writer is done.
    fn wait_readable(&self, flight: &Flight) -> bool {
        loop {
            if flight.is_reader_done() {
                return false;
            }
            if net::wait_readable(&[self.tcp.as_fd()], Some(Duration::from_millis(500))) {
                return true;
            }
        }
    }
}

/// The init segment and its media time origin.
pub struct Init {
    bytes: Vec<u8>,
    origin_us: u64,
}

/// Fragmented MP4 of the stream, muxed once per frame while some tab plays it through Media
/// Source Extensions, and kept for a few frames until every such tab has sent it.
pub struct Fragments {
    state: Mutex<FragmentsState>,
}

struct FragmentsState {
    fragmenter: Fragmenter,
    init: Option<Arc<Init>>,
    recent: VecDeque<(u64, Arc<Vec<u8>>)>,
}

impl Fragments {
    pub fn new(stored: Stored, size: (u32, u32), fps: f64) -> Result<Fragments> {
        Ok(Fragments {
            state: Mutex::new(FragmentsState {
                fragmenter: Fragmenter::new(stored, size, fps)?,
                init: None,
                recent: VecDeque::new(),
            }),
        })
    }

    /// The MIME type for `MediaSource.isTypeSupported`, once the first keyframe is muxed.
    fn mime(&self) -> Option<String> {
        lock(&self.state).fragmenter.mime().map(str::to_owned)
    }

    /// Frame `seq`'s fragment and the init segment it follows, while kept.
    fn get(&self, seq: u64) -> Option<(Arc<Init>, Arc<Vec<u8>>)> {
        let state = lock(&self.state);
        let init = Arc::clone(state.init.as_ref()?);
        let (_, fragment) = state.recent.iter().find(|(s, _)| *s == seq)?;
        Some((init, Arc::clone(fragment)))
    }
}

impl Prepare for Fragments {
    fn prepare(&self, frame: &EncodedFrame) -> Result<()> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let Some(fragment) = state.fragmenter.push(&frame.header, &frame.data)? else {
            return Ok(());
        };
        let fragment = Arc::new(fragment.to_vec());
        if state.init.is_none() {
            if let (Some(bytes), Some(origin_us)) = (
                state.fragmenter.init_segment(),
                state.fragmenter.origin_us(),
            ) {
                state.init = Some(Arc::new(Init {
                    bytes: bytes.to_vec(),
                    origin_us,
                }));
            }
        }
        if state.recent.len() >= RECENT_FRAGMENTS {
            state.recent.pop_front();
        }
        state.recent.push_back((frame.header.seq, fragment));
        Ok(())
    }
}
