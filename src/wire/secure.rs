//! Pairing and encryption, on bytes only (no sockets): the pairing code, the SPAKE2 exchange on
//! it, the keys derived from it, and sealing and opening messages.
//!
//! Both sides run symmetric SPAKE2 (RustCrypto's `spake2`, Ed25519 group) on the code: each sends
//! one message, and each ends with the same 32-byte secret only if both typed the same code. A
//! passive listener learns nothing about the code; an active one gets one guess per connection.
//! HKDF-SHA256 over that secret and the sender's hello (so a hello altered on the way ends the
//! pairing) gives one AES-256-GCM key per direction; their nonces are message counters, so a
//! replayed, reordered, dropped or altered message fails to open.
//!
//! Frames are sealed with one *frame key* for all viewers: the sender makes it at random when it
//! starts and hands it to each paired viewer inside its first sealed message. Anyone who can open
//! frames knows the code, and whoever knows the code can pair anyway, so sharing this key among
//! viewers protects exactly what per-viewer keys would. A frame is sealed in 64 KiB chunks (the
//! STREAM construction, as age and Tink use it): each chunk's nonce is the frame's sequence
//! number (carried in the clear in front of it), the chunk's index and a last-chunk flag, so
//! chunks cannot be moved or a frame cut short, and a viewer accepts only increasing sequence
//! numbers (it may skip frames, never go back). Chunks let the sender seal a few right before the
//! socket copies them, and the receiver open a few right after it read them, while they are still
//! in the core's cache: paired runs as fast as the clear (see `SEALED_WRITE_CHUNKS` in
//! [`super::connection`]), where sealing whole frames ahead ran at 0.7 of it. Each viewer's
//! writer seals what it sends; a sequence number names one frame message of the stream, so a
//! nonce only ever seals that message, into the same bytes for every viewer.
//!
//! AES-256-GCM comes from `aws-lc-rs` (AWS-LC, rustls's default provider) because it was
//! measured fastest here: its AVX-512 code seals a 1080p frame at about 16 GB/s on one core,
//! against 10 GB/s for `ring` and 1.5 GB/s for RustCrypto's `aes-gcm` and `chacha20poly1305`, and
//! it can seal from one buffer into another, so a frame is not copied before it is sealed.

use super::protocol::Security;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use std::time::Duration;

/// Bytes an AEAD tag adds to a sealed message.
pub const TAG_LEN: usize = 16;
/// Bytes of the sequence number in front of a sealed frame.
pub const FRAME_SEQ_LEN: usize = 8;
/// Bytes of a frame key.
pub const FRAME_KEY_LEN: usize = 32;
/// Binds the exchange to this program and protocol, so its messages mean nothing elsewhere.
const IDENTITY: &[u8] = b"camstream pairing v3";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    #[error("pairing code did not match")]
    CodeMismatch,
    #[error("pairing message is malformed")]
    BadPairingMessage,
    #[error("message {counter} failed authentication (altered, replayed, reordered or cut)")]
    Tampered { counter: u64 },
    #[error("frame {seq} came after frame {last} (replayed or reordered)")]
    OutOfOrder { seq: u64, last: u64 },
    #[error("sealed message of {len} bytes is too short to hold a tag")]
    TooShort { len: usize },
    #[error("the system's random number generator failed")]
    NoRandomness,
    #[error("sealed frame of {len} bytes is not cut into chunks as a sealer cuts them")]
    BadChunking { len: usize },
    #[error("message too long to seal")]
    TooLong,
}

/// Whether `error` is a pairing that failed because the two codes differ.
pub fn is_code_mismatch(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<SecureError>() == Some(&SecureError::CodeMismatch))
}

/// The longest a sender locks out an address that keeps giving wrong pairing codes.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(60);

/// How long a sender locks out an address after `failures` wrong codes in a row: twice as long
/// as the last (1 s, 2 s, 4 s … up to [`MAX_LOCKOUT`]), so guessing costs time while a person
/// who mistyped is barely slowed. Here, not in the sender, so that a receiver whose user typed
/// a code can tell them how long to wait.
pub fn lockout_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_LOCKOUT)
}

/// A fresh one-time pairing code like `37-noble-otter`: a number and two words, about 27 bits.
pub fn new_code() -> Result<String, SecureError> {
    let mut byte = [0u8; 1];
    SystemRandom::new()
        .fill(&mut byte)
        .map_err(|_| SecureError::NoRandomness)?;
    let words = petname::petname(2, "-").ok_or(SecureError::NoRandomness)?;
    Ok(format!("{}-{words}", 1 + u32::from(byte[0]) % 99))
}

/// What the user chose: pair on a code and encrypt, or stream in the clear (`--insecure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingMode {
    Code(String),
    Insecure,
}

impl PairingMode {
    pub fn security(&self) -> Security {
        match self {
            PairingMode::Code(_) => Security::Paired,
            PairingMode::Insecure => Security::Insecure,
        }
    }

    /// The code to pair on, or `None` with `--insecure`.
    pub fn code(&self) -> Option<&str> {
        match self {
            PairingMode::Code(code) => Some(code),
            PairingMode::Insecure => None,
        }
    }
}

/// One side's half of the SPAKE2 exchange on a code, between sending its message and reading
/// the other's.
pub struct PairingExchange {
    spake: Spake2<Ed25519Group>,
}

/// The two directions of a paired connection, as both sides derive them.
pub struct PairedKeys {
    /// Seals messages from the sender to the receiver.
    pub to_receiver: Channel,
    /// Seals messages from the receiver to the sender.
    pub to_sender: Channel,
}

impl PairingExchange {
    /// Starts pairing on `code`; the bytes go to the other side in a `Pake` message.
    pub fn start(code: &str) -> (PairingExchange, Vec<u8>) {
        let (spake, outbound) = Spake2::<Ed25519Group>::start_symmetric(
            &Password::new(code.as_bytes()),
            &Identity::new(IDENTITY),
        );
        (PairingExchange { spake }, outbound)
    }

    /// Finishes with the other side's message and the sender's hello exactly as it was sent.
    /// Succeeds even when the codes differ: that shows when the first sealed message fails to
    /// open, which [`Channel::open_first`] reports as [`SecureError::CodeMismatch`].
    pub fn finish(self, theirs: &[u8], stream_hello: &[u8]) -> Result<PairedKeys, SecureError> {
        let secret = self
            .spake
            .finish(theirs)
            .map_err(|_| SecureError::BadPairingMessage)?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, stream_hello).extract(&secret);
        let key = |direction: &[u8]| -> Result<Channel, SecureError> {
            let info = [direction];
            let okm = prk
                .expand(&info, &AES_256_GCM)
                .map_err(|_| SecureError::BadPairingMessage)?;
            Ok(Channel::new(UnboundKey::from(okm)))
        };
        Ok(PairedKeys {
            to_receiver: key(b"camstream sender to receiver")?,
            to_sender: key(b"camstream receiver to sender")?,
        })
    }
}

/// One direction of a paired connection: AES-256-GCM with a counter nonce.
pub struct Channel {
    key: LessSafeKey,
    counter: u64,
}

impl Channel {
    fn new(key: UnboundKey) -> Self {
        Channel {
            key: LessSafeKey::new(key),
            counter: 0,
        }
    }

    /// Seals `message` in place (its tag appended), as the next message in this direction.
    pub fn seal(&mut self, message: &mut Vec<u8>) -> Result<(), SecureError> {
        let nonce = counter_nonce(self.counter);
        self.counter += 1;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), message)
            .map_err(|_| SecureError::TooLong)?;
        message.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens the next message in this direction, in place; returns its plaintext.
    pub fn open<'b>(&mut self, sealed: &'b mut [u8]) -> Result<&'b [u8], SecureError> {
        if sealed.len() < TAG_LEN {
            return Err(SecureError::TooShort { len: sealed.len() });
        }
        let counter = self.counter;
        let plain = self
            .key
            .open_in_place(counter_nonce(counter), Aad::empty(), sealed)
            .map_err(|_| SecureError::Tampered { counter })?;
        self.counter += 1;
        Ok(plain)
    }

    /// Opens the first message after pairing: failing there means the codes differ.
    pub fn open_first<'b>(&mut self, sealed: &'b mut [u8]) -> Result<&'b [u8], SecureError> {
        self.open(sealed).map_err(|_| SecureError::CodeMismatch)
    }
}

fn counter_nonce(counter: u64) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[NONCE_LEN - 8..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(nonce)
}

/// The sender's key for frames, shared by every paired viewer of this run.
pub struct FrameSealer {
    key: LessSafeKey,
    bytes: [u8; FRAME_KEY_LEN],
}

impl FrameSealer {
    /// A new random key; each sender run makes its own, so (key, sequence number) never repeats.
    pub fn generate() -> Result<FrameSealer, SecureError> {
        let mut bytes = [0u8; FRAME_KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SecureError::NoRandomness)?;
        Ok(FrameSealer {
            key: frame_key(&bytes),
            bytes,
        })
    }

    /// The key, for a paired viewer.
    pub fn key_bytes(&self) -> [u8; FRAME_KEY_LEN] {
        self.bytes
    }

    /// Seals `chunks` of a frame message (`prefix` then `pixels`, encrypted straight from where
    /// they lie: no copy first) into `out`, each chunk's ciphertext then its tag. A sealed frame
    /// is its sequence number, then all its chunks ([`frame_chunks`]) sealed in order.
    pub fn seal_chunks(
        &self,
        seq: u64,
        prefix: &[u8],
        pixels: &[u8],
        chunks: std::ops::Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), SecureError> {
        let plain_len = prefix.len() + pixels.len();
        let count = frame_chunks(plain_len);
        let chunks = chunks.start.min(count)..chunks.end.min(count);
        let start = (chunks.start * FRAME_CHUNK_LEN).min(plain_len);
        let end = (chunks.end * FRAME_CHUNK_LEN).min(plain_len);
        // Growing zero-fills only the new part; every byte is then overwritten.
        out.resize(end - start + chunks.len() * TAG_LEN, 0);
        let mut sealed = out.as_mut_slice();
        for index in chunks {
            let start = index * FRAME_CHUNK_LEN;
            let end = (start + FRAME_CHUNK_LEN).min(plain_len);
            // The chunk's plaintext lies in the prefix, the pixels, or across the two.
            let head = &prefix[start.min(prefix.len())..end.min(prefix.len())];
            let rest =
                &pixels[start.saturating_sub(prefix.len())..end.saturating_sub(prefix.len())];
            let (chunk, after) = std::mem::take(&mut sealed).split_at_mut(end - start + TAG_LEN);
            let (sealed_head, sealed_rest_and_tag) = chunk.split_at_mut(head.len());
            let nonce = chunk_nonce(seq, index, index + 1 == count);
            self.key
                .seal_out_of_place_scatter(
                    nonce,
                    Aad::empty(),
                    head,
                    sealed_head,
                    rest,
                    sealed_rest_and_tag,
                )
                .map_err(|_| SecureError::TooLong)?;
            sealed = after;
        }
        Ok(())
    }
}

fn frame_key(bytes: &[u8; FRAME_KEY_LEN]) -> LessSafeKey {
    // Any 32 bytes are an AES-256 key.
    let key = UnboundKey::new(&AES_256_GCM, bytes).unwrap_or_else(|_| unreachable!());
    LessSafeKey::new(key)
}

/// Plaintext bytes in each sealed chunk of a frame message but the last, which holds from 1 to
/// this many (an empty message is one empty chunk). Small enough that a chunk just read from
/// the socket is opened while it is still in the core's cache.
pub const FRAME_CHUNK_LEN: usize = 64 << 10;

/// Bytes of a full chunk once sealed.
pub const SEALED_CHUNK_LEN: usize = FRAME_CHUNK_LEN + TAG_LEN;

/// Chunks a frame message of `plain_len` bytes is sealed in.
pub fn frame_chunks(plain_len: usize) -> usize {
    plain_len.div_ceil(FRAME_CHUNK_LEN).max(1)
}

/// Bytes of a frame message of `plain_len` bytes once sealed.
pub fn sealed_frame_len(plain_len: usize) -> usize {
    FRAME_SEQ_LEN + plain_len + frame_chunks(plain_len) * TAG_LEN
}

/// A chunk's nonce: the frame's sequence number, the chunk's index, and whether it is the last
/// (the STREAM construction), so chunks cannot be moved between frames or within one, and a
/// frame cannot be cut short at a chunk's end.
fn chunk_nonce(seq: u64, index: usize, last: bool) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&seq.to_le_bytes());
    // At most 64 MiB / 64 KiB chunks, so three bytes always hold the index.
    nonce[8..11].copy_from_slice(&(index as u32).to_le_bytes()[..3]);
    nonce[11] = u8::from(last);
    Nonce::assume_unique_for_key(nonce)
}

/// A viewer's side of the frame key: opens frames and refuses any that do not move forward.
pub struct FrameOpener {
    key: LessSafeKey,
    last: Option<u64>,
}

/// One sealed frame being opened, chunk by chunk as it is read.
pub struct FrameOpening {
    seq: u64,
    plain_len: usize,
    /// The next chunk to open.
    index: usize,
}

impl FrameOpening {
    /// Bytes of the frame message once opened.
    pub fn plain_len(&self) -> usize {
        self.plain_len
    }

    /// The next chunk's place in the opened message (sealed, it is [`TAG_LEN`] longer); `None`
    /// once all are open.
    pub fn next_chunk(&self) -> Option<std::ops::Range<usize>> {
        let start = self.index * FRAME_CHUNK_LEN;
        if self.index >= frame_chunks(self.plain_len) {
            return None;
        }
        Some(start..(start + FRAME_CHUNK_LEN).min(self.plain_len))
    }
}

impl FrameOpener {
    pub fn new(key: &[u8; FRAME_KEY_LEN]) -> Self {
        FrameOpener {
            key: frame_key(key),
            last: None,
        }
    }

    /// Starts opening a sealed frame of `sealed_len` bytes that begins with `seq_bytes`:
    /// refused if it does not move forward or no frame seals to that length.
    pub fn begin(
        &self,
        seq_bytes: [u8; FRAME_SEQ_LEN],
        sealed_len: usize,
    ) -> Result<FrameOpening, SecureError> {
        let seq = u64::from_le_bytes(seq_bytes);
        if let Some(last) = self.last.filter(|&last| seq <= last) {
            return Err(SecureError::OutOfOrder { seq, last });
        }
        let too_short = SecureError::TooShort { len: sealed_len };
        let body = sealed_len
            .checked_sub(FRAME_SEQ_LEN)
            .ok_or(too_short.clone())?;
        // Every chunk but the last is full, so the count follows from the length.
        let chunks = body.div_ceil(FRAME_CHUNK_LEN + TAG_LEN).max(1);
        let plain_len = body.checked_sub(chunks * TAG_LEN).ok_or(too_short)?;
        if sealed_frame_len(plain_len) != sealed_len {
            return Err(SecureError::BadChunking { len: sealed_len });
        }
        Ok(FrameOpening {
            seq,
            plain_len,
            index: 0,
        })
    }

    /// Opens `opening`'s next chunk, `sealed` (as [`FrameOpening::next_chunk`] measured it),
    /// into `out`, its place in the opened message. After the last, the frame counts as seen.
    pub fn open_chunk(
        &mut self,
        opening: &mut FrameOpening,
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<(), SecureError> {
        let chunks = frame_chunks(opening.plain_len);
        let last = opening.index + 1 == chunks;
        let tampered = SecureError::Tampered {
            counter: opening.seq,
        };
        if opening.index >= chunks || sealed.len() != out.len() + TAG_LEN {
            return Err(tampered);
        }
        let (ciphertext, tag) = sealed.split_at(out.len());
        let nonce = chunk_nonce(opening.seq, opening.index, last);
        self.key
            .open_separate_gather(nonce, Aad::empty(), ciphertext, tag, out)
            .map_err(|_| tampered)?;
        opening.index += 1;
        if last {
            self.last = Some(opening.seq);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = b"the sender's hello";

    fn pair(code_a: &str, code_b: &str) -> (PairedKeys, PairedKeys) {
        let (a, msg_a) = PairingExchange::start(code_a);
        let (b, msg_b) = PairingExchange::start(code_b);
        (
            a.finish(&msg_b, HELLO).unwrap(),
            b.finish(&msg_a, HELLO).unwrap(),
        )
    }

    #[test]
    fn the_same_code_pairs_and_messages_open_in_order() {
        let (mut sender, mut receiver) = pair("7-crossover-clockwork", "7-crossover-clockwork");
        for text in [&b"first"[..], b"second", b""] {
            let mut message = text.to_vec();
            sender.to_receiver.seal(&mut message).unwrap();
            assert!(
                text.is_empty() || &message[..text.len()] != text,
                "sealed is not plain"
            );
            assert_eq!(receiver.to_receiver.open(&mut message).unwrap(), text);
        }
        let mut ack = b"ack".to_vec();
        receiver.to_sender.seal(&mut ack).unwrap();
        assert_eq!(sender.to_sender.open_first(&mut ack).unwrap(), b"ack");
    }

    #[test]
    fn a_different_code_is_a_mismatch_on_the_first_message() {
        let (mut sender, mut receiver) = pair("7-crossover-clockwork", "7-crossover-clockwor");
        let mut message = b"frame key".to_vec();
        sender.to_receiver.seal(&mut message).unwrap();
        assert_eq!(
            receiver.to_receiver.open_first(&mut message),
            Err(SecureError::CodeMismatch)
        );
    }

    #[test]
    fn an_altered_hello_is_a_mismatch() {
        let (a, msg_a) = PairingExchange::start("code");
        let (b, msg_b) = PairingExchange::start("code");
        let mut sender = a.finish(&msg_b, HELLO).unwrap();
        let mut receiver = b.finish(&msg_a, b"an altered hello").unwrap();
        let mut message = b"frame key".to_vec();
        sender.to_receiver.seal(&mut message).unwrap();
        assert!(receiver.to_receiver.open_first(&mut message).is_err());
    }

    #[test]
    fn flipped_replayed_reordered_and_cut_messages_are_refused() {
        let (mut sender, mut receiver) = pair("code", "code");
        let sealed: Vec<Vec<u8>> = (0..3u8)
            .map(|i| {
                let mut m = vec![i; 10];
                sender.to_receiver.seal(&mut m).unwrap();
                m
            })
            .collect();
        let mut flipped = sealed[0].clone();
        flipped[3] ^= 1;
        assert!(matches!(
            receiver.to_receiver.open(&mut flipped),
            Err(SecureError::Tampered { counter: 0 })
        ));
        assert!(receiver.to_receiver.open(&mut sealed[0].clone()).is_ok());
        // Replayed, then skipped ahead (dropped), then cut: none opens.
        assert!(receiver.to_receiver.open(&mut sealed[0].clone()).is_err());
        assert!(receiver.to_receiver.open(&mut sealed[2].clone()).is_err());
        let cut = &sealed[1][..sealed[1].len() - 1];
        assert!(receiver.to_receiver.open(&mut cut.to_vec()).is_err());
        assert!(matches!(
            receiver.to_receiver.open(&mut [0u8; 3]),
            Err(SecureError::TooShort { len: 3 })
        ));
        assert!(receiver.to_receiver.open(&mut sealed[1].clone()).is_ok());
    }

    /// A whole sealed frame: its sequence number, then every chunk sealed.
    fn seal_frame(sealer: &FrameSealer, seq: u64, prefix: &[u8], pixels: &[u8]) -> Vec<u8> {
        // A recycled buffer, longer than what is sealed into it: its old bytes must not matter.
        let mut chunks = vec![0xAA; 3 * FRAME_CHUNK_LEN];
        let count = frame_chunks(prefix.len() + pixels.len());
        sealer
            .seal_chunks(seq, prefix, pixels, 0..count, &mut chunks)
            .unwrap();
        [&seq.to_le_bytes()[..], &chunks].concat()
    }

    /// Opens a whole sealed frame, chunk by chunk as a reader would.
    fn open_frame(opener: &mut FrameOpener, sealed: &[u8]) -> Result<Vec<u8>, SecureError> {
        let seq = sealed
            .first_chunk::<FRAME_SEQ_LEN>()
            .ok_or(SecureError::TooShort { len: sealed.len() })?;
        let mut opening = opener.begin(*seq, sealed.len())?;
        let mut plain = vec![0; opening.plain_len()];
        let mut at = FRAME_SEQ_LEN;
        while let Some(place) = opening.next_chunk() {
            let chunk = &sealed[at..at + place.len() + TAG_LEN];
            at += chunk.len();
            opener.open_chunk(&mut opening, chunk, &mut plain[place])?;
        }
        Ok(plain)
    }

    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn frames_of_every_size_round_trip_in_chunks() {
        let sealer = FrameSealer::generate().unwrap();
        let mut opener = FrameOpener::new(&sealer.key_bytes());
        let c = FRAME_CHUNK_LEN;
        let mut seq = 0;
        for prefix_len in [0, 45, c + 3] {
            for pixels_len in [0, 1, c - 46, c - 45, c, c + 1, 3 * c + 7] {
                let (prefix, pixels) = (bytes(prefix_len), bytes(pixels_len + 1)[1..].to_vec());
                seq += 1;
                let sealed = seal_frame(&sealer, seq, &prefix, &pixels);
                let plain_len = prefix_len + pixels_len;
                assert_eq!(sealed.len(), sealed_frame_len(plain_len));
                assert_eq!(
                    sealed.len() - plain_len,
                    FRAME_SEQ_LEN + TAG_LEN * plain_len.div_ceil(c).max(1)
                );
                let opened = open_frame(&mut opener, &sealed).unwrap();
                assert!(
                    opened == [prefix, pixels].concat(),
                    "{prefix_len} + {pixels_len}"
                );
            }
        }
        // Sealed a few chunks at a time, a frame is the same bytes as sealed whole.
        let pixels = bytes(5 * c);
        let whole = seal_frame(&sealer, 99, b"head", &pixels);
        let mut pieces = 99u64.to_le_bytes().to_vec();
        let mut batch = Vec::new();
        for first in (0..6).step_by(2) {
            sealer
                .seal_chunks(99, b"head", &pixels, first..first + 2, &mut batch)
                .unwrap();
            pieces.extend_from_slice(&batch);
        }
        assert!(pieces == whole);
    }

    #[test]
    fn frames_open_only_forward_unaltered_whole_and_in_order() {
        let sealer = FrameSealer::generate().unwrap();
        let mut opener = FrameOpener::new(&sealer.key_bytes());
        let c = FRAME_CHUNK_LEN;
        let pixels = bytes(3 * c);
        assert_eq!(
            open_frame(&mut opener, &seal_frame(&sealer, 5, b"head", b"pixels")).unwrap(),
            b"headpixels"
        );
        // Skipping ahead is allowed (a viewer skips frames); going back is not.
        assert!(open_frame(&mut opener, &seal_frame(&sealer, 9, b"", &pixels)).is_ok());
        assert_eq!(
            open_frame(&mut opener, &seal_frame(&sealer, 9, b"", &pixels)),
            Err(SecureError::OutOfOrder { seq: 9, last: 9 })
        );
        let tampered = |seq| Err(SecureError::Tampered { counter: seq });
        // Its sequence number changed in the clear.
        let mut moved = seal_frame(&sealer, 12, b"", &pixels);
        moved[..8].copy_from_slice(&13u64.to_le_bytes());
        assert_eq!(open_frame(&mut opener, &moved), tampered(13));
        // A bit flipped in the last chunk.
        let mut flipped = seal_frame(&sealer, 14, b"", &pixels);
        let last = flipped.len() - 3;
        flipped[last] ^= 0x80;
        assert_eq!(open_frame(&mut opener, &flipped), tampered(14));
        // Two chunks swapped.
        let sealed = seal_frame(&sealer, 15, b"", &pixels);
        let (first, second) = (8..8 + c + TAG_LEN, 8 + c + TAG_LEN..8 + 2 * (c + TAG_LEN));
        let swapped = [
            &sealed[..8],
            &sealed[second],
            &sealed[first],
            &sealed[8 + 2 * (c + 16)..],
        ];
        assert_eq!(open_frame(&mut opener, &swapped.concat()), tampered(15));
        // Cut after a whole chunk: what is left is a frame of fewer chunks, whose last chunk
        // was not sealed as the last.
        let cut = &seal_frame(&sealer, 16, b"", &pixels)[..8 + 2 * (c + TAG_LEN)];
        assert_eq!(open_frame(&mut opener, cut), tampered(16));
        // A length no frame seals to: a chunk's worth and no more than a tag past the last.
        let odd = seal_frame(&sealer, 17, b"", &pixels);
        assert_eq!(
            open_frame(&mut opener, &odd[..8 + c + TAG_LEN + 10]),
            Err(SecureError::BadChunking {
                len: 8 + c + TAG_LEN + 10
            })
        );
        let short = [&100u64.to_le_bytes()[..], &[0; 12]].concat();
        assert_eq!(
            open_frame(&mut opener, &short),
            Err(SecureError::TooShort { len: 20 })
        );
        // Another sender's key.
        let other = FrameSealer::generate().unwrap();
        assert_eq!(
            open_frame(&mut opener, &seal_frame(&other, 20, b"", b"x")),
            tampered(20)
        );
        // Nothing above counted as seen: the next frames still open.
        assert!(open_frame(&mut opener, &seal_frame(&sealer, 18, b"", &pixels)).is_ok());
    }

    #[test]
    fn codes_are_a_number_and_two_words() {
        let code = new_code().unwrap();
        let parts: Vec<&str> = code.split('-').collect();
        assert_eq!(parts.len(), 3, "{code}");
        assert!(parts[0].parse::<u32>().is_ok_and(|n| (1..=99).contains(&n)));
        assert_ne!(new_code().unwrap(), code);
    }
}
