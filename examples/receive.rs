//! Receives frames from a camstream sender in your own program and prints what each is.
//!
//! ```sh
//! sender --source test --code 7-crossover-clockwork --no-preview &
//! cargo run --example receive -- 127.0.0.1:9999 7-crossover-clockwork 30
//! ```

use anyhow::{Context, Result};
use camstream::{PairingMode, Receiver};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args
        .next()
        .context("usage: receive HOST:PORT CODE|insecure [FRAMES]")?;
    let pairing = match args.next().as_deref() {
        None | Some("insecure") => PairingMode::Insecure,
        Some(code) => PairingMode::Code(code.to_owned()),
    };
    let frames: usize = args.next().map_or(Ok(30), |n| n.parse())?;
    let mut receiver = Receiver::connect(&address, pairing)?;
    for frame in receiver.by_ref().take(frames) {
        let frame = frame?;
        // The middle pixel, blue, green, red.
        let middle =
            (frame.height as usize / 2 * frame.width as usize + frame.width as usize / 2) * 3;
        println!(
            "frame {}: {}x{} {}, {:.1} ms old, middle pixel {:?}",
            frame.seq,
            frame.width,
            frame.height,
            frame.codec,
            frame.latency.as_secs_f64() * 1e3,
            &frame.bgr[middle..middle + 3]
        );
    }
    println!("{}", serde_json::to_string(&receiver.stats())?);
    Ok(())
}
