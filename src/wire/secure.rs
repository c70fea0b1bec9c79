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
//! Frames are sealed once for all viewers, not once per viewer: the sender makes a random
//! *frame key* when it starts and hands it to each paired viewer inside its first sealed message.
//! A frame's nonce is its sequence number, carried in the clear in front of it; a viewer accepts
//! only increasing ones (a viewer may skip frames, never go back). Anyone who can open frames
//! knows the code, and whoever knows the code can pair anyway, so sharing this key among viewers
//! protects exactly what per-viewer keys would.
//!
//! AES-256-GCM comes from `aws-lc-rs` (AWS-LC, rustls's default provider) because it was
//! measured fastest here: its AVX-512 code seals a 1080p frame at about 16 GB/s on one core,
//! against 10 GB/s for `ring` and 1.5 GB/s for RustCrypto's `aes-gcm` and `chacha20poly1305`, and
//! it can seal from one buffer into another, so a frame is not copied before it is sealed.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use std::time::Duration;

/// Bytes an AEAD tag adds to a sealed message.
pub const TAG_LEN: usize = 16;
/// Bytes of the sequence number in front of a sealed frame.
pub const FRAME_SEQ_LEN: usize = 8;
/// Bytes a sealed frame adds to the frame message.
pub const FRAME_OVERHEAD: usize = FRAME_SEQ_LEN + TAG_LEN;
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

/// One side's half of the SPAKE2 exchange on a code, between sending its message and reading
/// the other's. (What the user chose, a code or `--insecure`, is `config::PairingMode`.)
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

    /// Seals a frame message: `out` becomes the sequence number, then the sealed frame message
    /// (`prefix` then `pixels`, encrypted straight from where they lie: no copy first), then the
    /// tag. `out`'s old bytes are overwritten, so a recycled buffer is not cleared first.
    pub fn seal(
        &self,
        seq: u64,
        prefix: &[u8],
        pixels: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SecureError> {
        out.resize(FRAME_OVERHEAD + prefix.len() + pixels.len(), 0);
        let (seq_bytes, sealed) = out.split_at_mut(FRAME_SEQ_LEN);
        seq_bytes.copy_from_slice(&seq.to_le_bytes());
        let (sealed_prefix, sealed_pixels_and_tag) = sealed.split_at_mut(prefix.len());
        self.key
            .seal_out_of_place_scatter(
                counter_nonce(seq),
                Aad::empty(),
                prefix,
                sealed_prefix,
                pixels,
                sealed_pixels_and_tag,
            )
            .map_err(|_| SecureError::TooLong)
    }
}

fn frame_key(bytes: &[u8; FRAME_KEY_LEN]) -> LessSafeKey {
    // Any 32 bytes are an AES-256 key.
    let key = UnboundKey::new(&AES_256_GCM, bytes).unwrap_or_else(|_| unreachable!());
    LessSafeKey::new(key)
}

/// A viewer's side of the frame key: opens frames and refuses any that do not move forward.
pub struct FrameOpener {
    key: LessSafeKey,
    last: Option<u64>,
}

impl FrameOpener {
    pub fn new(key: &[u8; FRAME_KEY_LEN]) -> Self {
        FrameOpener {
            key: frame_key(key),
            last: None,
        }
    }

    /// Opens a sealed frame in place; returns where its plaintext lies in `sealed`.
    pub fn open(&mut self, sealed: &mut [u8]) -> Result<std::ops::Range<usize>, SecureError> {
        let Some((seq, rest)) = sealed.split_first_chunk_mut::<FRAME_SEQ_LEN>() else {
            return Err(SecureError::TooShort { len: sealed.len() });
        };
        let seq = u64::from_le_bytes(*seq);
        if let Some(last) = self.last.filter(|&last| seq <= last) {
            return Err(SecureError::OutOfOrder { seq, last });
        }
        let len = self
            .key
            .open_in_place(counter_nonce(seq), Aad::empty(), rest)
            .map_err(|_| SecureError::Tampered { counter: seq })?
            .len();
        self.last = Some(seq);
        Ok(FRAME_SEQ_LEN..FRAME_SEQ_LEN + len)
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

    #[test]
    fn frames_open_only_forward_and_only_unaltered() {
        let sealer = FrameSealer::generate().unwrap();
        let mut opener = FrameOpener::new(&sealer.key_bytes());
        let seal = |seq: u64| {
            // A recycled buffer, longer or shorter than the frame: its old bytes must not matter.
            let mut out = vec![0xAA; seq as usize * 4];
            sealer.seal(seq, b"head", b"pixels", &mut out).unwrap();
            out
        };
        let mut first = seal(5);
        assert_eq!(first.len(), 10 + FRAME_OVERHEAD);
        let range = opener.open(&mut first).unwrap();
        assert_eq!(&first[range], b"headpixels");
        // Skipping ahead is allowed (a viewer skips frames); going back is not.
        assert!(opener.open(&mut seal(9)).is_ok());
        assert_eq!(
            opener.open(&mut seal(9)),
            Err(SecureError::OutOfOrder { seq: 9, last: 9 })
        );
        let mut moved = seal(12);
        moved[..8].copy_from_slice(&13u64.to_le_bytes());
        assert!(matches!(
            opener.open(&mut moved),
            Err(SecureError::Tampered { .. })
        ));
        let mut flipped = seal(14);
        flipped[12] ^= 0x80;
        assert!(opener.open(&mut flipped).is_err());
        assert!(opener.open(&mut seal(15)).is_ok());
        let other = FrameSealer::generate().unwrap();
        let mut foreign = Vec::new();
        other.seal(20, b"", b"x", &mut foreign).unwrap();
        assert!(opener.open(&mut foreign).is_err());
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
