//! Everything the programs do with a peer's bytes before they reach OpenCV: the length check,
//! the decoder, the hello checks, the sender's first message (a hello or a refusal), opening a
//! sealed frame and the frame checks (against the stream, and each codec's own); and the web
//! side's: a request's head, and the page's WebSocket messages.
//! Any panic is a finding.
#![no_main]

use camstream::media::codec::check_frame;
use camstream::wire::protocol::{
    self, Codec, Message, StreamHello, LENGTH_PREFIX_LEN, MAX_MESSAGE_LEN,
};
use camstream::wire::connection::read_sealed_frame;
use camstream::wire::secure::FrameOpener;
use camstream::wire::{http, web};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some(prefix) = bytes.first_chunk::<LENGTH_PREFIX_LEN>() {
        let _ = protocol::check_length(*prefix, MAX_MESSAGE_LEN);
    }
    let _ = protocol::decode_viewer_hello(bytes);
    let _ = protocol::decode_ack(bytes);
    let _ = protocol::decode_pake(bytes);
    let _ = protocol::decode_frame_key(bytes);
    let _ = protocol::decode_paired(bytes);
    if let Ok(clock) = protocol::decode_clock(bytes) {
        let _ = clock.offset_us(u64::from_le_bytes(*bytes.first_chunk().unwrap_or(&[0; 8])));
    }
    let _ = http::parse_request(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = web::PageMessage::parse(text);
    }
    // What a paired receiver does with a frame before decoding it (`sealed_frames` fuzzes it
    // with frames that were really sealed).
    let mut opener = FrameOpener::new(&[7; 32]);
    let (mut scratch, mut buf) = (Vec::new(), Vec::new());
    let _ = read_sealed_frame(&mut &bytes[..], &mut opener, &mut scratch, &mut buf, MAX_MESSAGE_LEN);
    if let Ok(hello) = protocol::decode_stream_hello(bytes) {
        let _ = hello.max_message_len();
    }
    // What a receiver does with the sender's first message: a hello, or a refusal it shows.
    if let Ok(protocol::SenderGreeting::Refused(reason)) = protocol::decode_sender_greeting(bytes) {
        let _ = reason.to_string();
    }
    if let Ok(Message::Frame(frame)) = protocol::decode(bytes) {
        // Against the stream the frame claims to belong to, and against a fixed one.
        let h = frame.header;
        let claimed = StreamHello::new(h.width, h.height, h.codec, 30.0);
        if claimed.check().is_ok() {
            let _ = check_frame(&claimed, &frame);
        }
        for codec in [Codec::Raw, Codec::Jpeg, Codec::H264] {
            let _ = check_frame(&StreamHello::new(64, 48, codec, 30.0), &frame);
        }
    }
});
