//! The handshake, written once for the sender, the receiver and the tests: the two hellos, then,
//! unless both sides run `--insecure`, SPAKE2 on the pairing code and one sealed message each way
//! that proves both used the same code. It ends in a session ([`ViewerSession`] on the sender,
//! [`SenderSession`] on the receiver) whose frame and ack paths are the same calls whether the
//! connection is paired or not.
//!
//! Order on the wire: the sender sends its hello (and, when pairing, its SPAKE2 message) without
//! waiting; the receiver sends its hello (and its SPAKE2 message); then the sender's frame key
//! and the receiver's confirmation, each sealed with the keys SPAKE2 gave.

use super::connection::{read_payload, MessageReader, MessageWriter};
use super::protocol::{
    self, unix_micros, Clock, Message, Pake, RefusalReason, Security, SenderGreeting, StreamHello,
    ViewerHello, MAX_HELLO_LEN,
};
use super::secure::{
    Channel, FrameOpener, FrameSealer, PairingExchange, PairingMode, FRAME_KEY_LEN,
};
use super::session::{AckSealing, SenderSession, ViewerSession};
use anyhow::{anyhow, bail, Context, Result};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A peer has this long to say its part of the handshake before it is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The peer failed the handshake: a port scanner, a browser, garbage, or silence.
#[derive(Debug, thiserror::Error)]
#[error("not a camstream viewer")]
pub struct NotAViewer;

/// The sender refused us, and said why (a [`protocol::Refusal`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub RefusalReason);

/// Why the sender refused us, if that is what `error` is.
pub fn refusal(error: &anyhow::Error) -> Option<RefusalReason> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Refused>())
        .map(|refused| refused.0)
}

/// After a refusal, how long the receiver has to read it and close before the sender does.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// What the sender says to every viewer: its hello exactly as sent (pairing binds the keys to
/// it), how it pairs, and the frame key its paired viewers share.
pub struct Greeting {
    hello_payload: Vec<u8>,
    /// The code, and the key its viewers' frames are sealed with; `None` with `--insecure`.
    pairing: Option<(String, Arc<FrameSealer>)>,
}

impl Greeting {
    pub fn new(hello: &StreamHello, pairing: &PairingMode) -> Result<Greeting> {
        let mut hello_payload = Vec::new();
        protocol::encode_into(&Message::StreamHello(*hello), &mut hello_payload)?;
        let pairing = match pairing {
            PairingMode::Code(code) => Some((code.clone(), Arc::new(FrameSealer::generate()?))),
            PairingMode::Insecure => None,
        };
        Ok(Greeting {
            hello_payload,
            pairing,
        })
    }
}

/// Starts SPAKE2 on `code` and sends this side's message (right after the hello).
fn start_pairing<W: std::io::Write>(
    writer: &mut MessageWriter<W>,
    code: &str,
) -> Result<PairingExchange> {
    let (exchange, ours) = PairingExchange::start(code);
    writer.write_message(&Message::Pake(Pake { message: &ours }))?;
    Ok(exchange)
}

/// The sender's side: greets a viewer that just connected, and pairs with it when the sender
/// pairs. A peer that is not a camstream viewer (or does not pair the same way) fails with
/// [`NotAViewer`] in its error chain; a wrong code with `secure::SecureError::CodeMismatch`.
pub fn greet_viewer<'s>(stream: &'s TcpStream, greeting: &Greeting) -> Result<ViewerSession<'s>> {
    stream.set_nodelay(true)?;
    let mut writer = MessageWriter::new(stream);
    writer
        .write_payload(&greeting.hello_payload)
        .context("sending hello")?;
    let pairing = match &greeting.pairing {
        Some((code, sealer)) => Some((start_pairing(&mut writer, code)?, sealer)),
        None => None,
    };
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut reader = MessageReader::new(stream);
    let hello = read_viewer_hello(&mut reader).context(NotAViewer)?;
    let hello = protocol::decode_viewer_hello(hello)
        .context("reading its hello")
        .context(NotAViewer)?;
    let clock = ClockReply {
        hello_sent: hello.sent_unix_us,
        hello_read: unix_micros(SystemTime::now()),
    };
    let (acks, frames) = match (pairing, hello.security) {
        (Some((exchange, sealer)), Security::Paired) => {
            let key = sealer.key_bytes();
            let acks = pair_with_viewer(&mut reader, &mut writer, exchange, greeting, key, clock)?;
            (AckSealing::Sealed(acks), Some(Arc::clone(sealer)))
        }
        (None, Security::Insecure) => {
            writer.write_message(&Message::Clock(clock.now()))?;
            (AckSealing::Clear, None)
        }
        (Some(_), Security::Insecure) => {
            return Err(anyhow!(
                "it does not pair (started with --insecure), and this sender needs its pairing code"
            )
            .context(NotAViewer))
        }
        (None, Security::Paired) => {
            return Err(anyhow!(
                "it expects a pairing code, and this sender was started with --insecure"
            )
            .context(NotAViewer))
        }
    };
    // From here the viewer only acks; it may pause for as long as it likes.
    stream.set_read_timeout(None)?;
    Ok(ViewerSession::new(reader, writer, acks, frames))
}

/// The sender's half of the clock reading, made when the viewer's hello is read.
#[derive(Clone, Copy)]
struct ClockReply {
    hello_sent: u64,
    hello_read: u64,
}

impl ClockReply {
    /// The reading, stamped as it is sent.
    fn now(self) -> Clock {
        Clock {
            hello_sent_unix_us: self.hello_sent,
            hello_read_unix_us: self.hello_read,
            sent_unix_us: unix_micros(SystemTime::now()),
        }
    }
}

/// Finishes pairing with a viewer: its SPAKE2 message, our sealed frame key and clock reading,
/// its sealed confirmation. Returns the channel its acks come sealed in.
fn pair_with_viewer(
    reader: &mut MessageReader<&TcpStream>,
    writer: &mut MessageWriter<&TcpStream>,
    exchange: PairingExchange,
    greeting: &Greeting,
    frame_key: [u8; FRAME_KEY_LEN],
    clock: ClockReply,
) -> Result<Channel> {
    let theirs = read_owed(
        reader,
        "waiting for its pairing message",
        "it closed the connection before pairing",
    )
    .context(NotAViewer)?;
    let theirs = protocol::decode_pake(theirs).context(NotAViewer)?;
    let mut keys = exchange
        .finish(theirs, &greeting.hello_payload)
        .context(NotAViewer)?;
    let key = protocol::FrameKey { key: frame_key };
    writer.write_sealed(&Message::FrameKey(key), &mut keys.to_receiver)?;
    writer.write_sealed(&Message::Clock(clock.now()), &mut keys.to_receiver)?;
    let confirmation = read_owed(
        reader,
        "waiting for it to confirm pairing",
        "it closed the connection while pairing",
    )?;
    // Copied (a few bytes) to be opened in place: `open_first` tells a wrong code from tampering.
    let mut confirmation = confirmation.to_vec();
    let opened = keys.to_sender.open_first(&mut confirmation)?;
    protocol::decode_paired(opened).context(NotAViewer)?;
    Ok(keys.to_sender)
}

/// The sender's side of a refusal: reads the viewer's hello, then answers with why it is
/// refused instead of the stream's hello. A viewer of another version gets the stream's hello,
/// which it cannot read either, and so says which versions each side speaks, as it always has.
/// The sender then waits (a little) for the viewer to close first: closing with its pairing
/// message unread would reset the connection, and the refusal could be lost with it.
pub fn refuse(stream: &TcpStream, greeting: &Greeting, reason: RefusalReason) -> Result<()> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut reader = MessageReader::new(stream);
    let hello = read_viewer_hello(&mut reader)?;
    let mut writer = MessageWriter::new(stream);
    match protocol::decode_viewer_hello(hello) {
        Err(protocol::ProtocolError::BadVersion { .. }) => {
            writer.write_payload(&greeting.hello_payload)?
        }
        Err(e) => return Err(anyhow!(e).context("reading its hello").context(NotAViewer)),
        Ok(_) => writer.write_message(&Message::Refusal(protocol::Refusal::new(reason)))?,
    };
    stream.shutdown(std::net::Shutdown::Write)?;
    // Whatever it still sends (its pairing message) is read and dropped until it closes, for
    // at most the linger in all, however much a hostile peer keeps sending.
    let deadline = Instant::now() + REFUSAL_LINGER;
    let mut rest = [0u8; 512];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        if !matches!(std::io::Read::read(&mut &*stream, &mut rest), Ok(1..)) {
            break;
        }
    }
    Ok(())
}

/// Reads the viewer's hello, which it sends on connecting.
fn read_viewer_hello<'r>(reader: &'r mut MessageReader<&TcpStream>) -> Result<&'r [u8]> {
    read_owed(
        reader,
        "waiting for its hello",
        "it closed the connection before saying hello",
    )
}

/// Reads a handshake message the viewer owes us; `waiting` names it in a read error, `closed`
/// says what a close before it means.
fn read_owed<'r>(
    reader: &'r mut MessageReader<&TcpStream>,
    waiting: &'static str,
    closed: &'static str,
) -> Result<&'r [u8]> {
    reader
        .read_payload(MAX_HELLO_LEN)
        .context(waiting)?
        .ok_or_else(|| anyhow!(closed))
}

/// The receiver's side: says hello and reads the sender's, with a time limit so a silent peer
/// cannot hang us; when pairing, runs SPAKE2 on the code and checks that the sender used the
/// same one.
pub fn greet_sender(stream: TcpStream, pairing: &PairingMode) -> Result<SenderSession> {
    let mut writer = MessageWriter::new(&stream);
    let hello = ViewerHello {
        sent_unix_us: unix_micros(SystemTime::now()),
        ..ViewerHello::new(pairing.security())
    };
    writer.write_message(&Message::ViewerHello(hello))?;
    let exchange = match pairing.code() {
        Some(code) => Some(start_pairing(&mut writer, code)?),
        None => None,
    };
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut buf = Vec::new();
    let mut reader = &stream;
    let refused = || {
        anyhow!("it closed the connection before saying hello (refused by its --allow, or serving too many connections?)")
    };
    match read_payload(&mut reader, &mut buf, MAX_HELLO_LEN) {
        Ok(true) => {}
        Ok(false) => return Err(refused()),
        // A sender refusing us closes without reading our hello, which resets the connection.
        Err(e) if crate::is_disconnect(&e) => return Err(refused()),
        Err(e) => return Err(e),
    }
    let hello = match protocol::decode_sender_greeting(&buf)? {
        SenderGreeting::Hello(hello) => hello,
        SenderGreeting::Refused(reason) => return Err(Refused(reason).into()),
    };
    let (keys, clock) = match (exchange, hello.security) {
        (None, Security::Insecure) => {
            let clock = read_clock(&mut reader, &mut buf, |clock| Ok(clock))?;
            (None, clock)
        }
        (Some(_), Security::Insecure) => bail!(
            "the sender streams without encryption (started with --insecure); pass --insecure to watch it anyway"
        ),
        (None, Security::Paired) => bail!(
            "the sender pairs with a code (it was not started with --insecure); pass --code with the code it shows"
        ),
        (Some(exchange), Security::Paired) => {
            let hello_payload = buf.clone();
            let mut next = |buf: &mut Vec<u8>| -> Result<()> {
                match read_payload(&mut reader, buf, MAX_HELLO_LEN)? {
                    true => Ok(()),
                    false => bail!("it closed the connection while pairing"),
                }
            };
            next(&mut buf)?;
            let mut keys = exchange.finish(protocol::decode_pake(&buf)?, &hello_payload)?;
            writer.write_sealed(&Message::Paired, &mut keys.to_sender)?;
            next(&mut buf)?;
            let key = protocol::decode_frame_key(keys.to_receiver.open_first(&mut buf)?)?;
            let channel = &mut keys.to_receiver;
            let clock = read_clock(&mut reader, &mut buf, |sealed| Ok(channel.open(sealed)?))?;
            (Some((FrameOpener::new(&key.key), keys.to_sender)), clock)
        }
    };
    stream.set_read_timeout(None)?;
    SenderSession::new(stream, hello, keys, clock)
}

/// Reads the sender's clock reading (`open` opens it when sealed) and returns the offset of
/// its clock from ours, in microseconds.
fn read_clock(
    reader: &mut &TcpStream,
    buf: &mut Vec<u8>,
    open: impl FnOnce(&mut [u8]) -> Result<&[u8]>,
) -> Result<i64> {
    if !read_payload(reader, buf, MAX_HELLO_LEN)? {
        bail!("it closed the connection before its clock reading");
    }
    let arrived = unix_micros(SystemTime::now());
    let clock = protocol::decode_clock(open(buf)?)?;
    Ok(clock.offset_us(arrived))
}
