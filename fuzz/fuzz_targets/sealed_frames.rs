//! The chunked framing of sealed frames, with frames that were really sealed: a frame of any
//! length, then cut anywhere and with any bytes flipped, read as a paired receiver reads it.
//! It must open to exactly what was sealed when untouched, and fail (never panic, never open to
//! other bytes) when touched. Input: 3 bytes of length, 3 of where to cut (0: no cut), then
//! (3 bytes of position, 1 byte to xor) for each flip.
#![no_main]

use camstream::wire::connection::{read_sealed_frame, MessageWriter};
use camstream::wire::protocol::{
    self, Codec, FrameHeader, Message, PixelFormat, LENGTH_PREFIX_LEN,
};
use camstream::wire::secure::{FrameOpener, FrameSealer};
use libfuzzer_sys::fuzz_target;

fn u24(bytes: &[u8]) -> usize {
    bytes.iter().rev().fold(0, |n, &b| n << 8 | usize::from(b))
}

fuzz_target!(|bytes: &[u8]| {
    let Some((head, flips)) = bytes.split_first_chunk::<6>() else {
        return;
    };
    let len = u24(&head[..3]) % (300 << 10);
    let pixels: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let header = FrameHeader {
        seq: 3,
        capture_unix_us: 1,
        width: 1,
        height: 1,
        pixel_format: PixelFormat::Bgr8,
        codec: Codec::Jpeg,
        keyframe: true,
    };
    let Ok(sealer) = FrameSealer::generate() else {
        return;
    };
    let mut writer = MessageWriter::new(Vec::new());
    if writer.write_sealed_frame(&header, &pixels, &sealer).is_err() {
        return;
    }
    let mut wire = writer.into_inner();
    let untouched = wire.clone();
    let cut = u24(&head[3..]);
    if cut > 0 && cut < wire.len() {
        wire.truncate(cut);
    }
    for flip in flips.chunks_exact(4) {
        // The length prefix is not sealed: flipping it is the cut's and the chunking's test.
        let at = LENGTH_PREFIX_LEN + u24(&flip[..3]) % wire.len().saturating_sub(LENGTH_PREFIX_LEN).max(1);
        if let Some(byte) = wire.get_mut(at) {
            *byte ^= flip[3];
        }
    }
    let mut opener = FrameOpener::new(&sealer.key_bytes());
    let (mut scratch, mut buf) = (Vec::new(), Vec::new());
    let read = read_sealed_frame(&mut &wire[..], &mut opener, &mut scratch, &mut buf, 1 << 20);
    match read {
        Ok(true) => {
            assert!(wire == untouched, "touched bytes opened");
            let Ok(Message::Frame(frame)) = protocol::decode(&buf) else {
                panic!("opened to something that is not the frame");
            };
            assert!(frame.header == header && frame.data == pixels.as_slice());
        }
        Ok(false) => assert!(wire.is_empty()),
        Err(_) => assert!(wire != untouched, "untouched frame did not open"),
    }
});
