//! Receives frames from several camstream senders in one place and prints which sent each.
//!
//! ```sh
//! sender --listen 127.0.0.1:9001 --source test --code 12-brave-heron --no-preview &
//! sender --listen 127.0.0.1:9002 --source test:320x240 --insecure --no-preview &
//! cargo run --example hub -- 127.0.0.1:9001=12-brave-heron 127.0.0.1:9002=insecure
//! ```

use anyhow::{Context, Result};
use camstream::{Hub, PairingMode};

fn main() -> Result<()> {
    let mut hub = Hub::new();
    let mut names = Vec::new();
    for arg in std::env::args().skip(1) {
        let (address, code) = arg
            .split_once('=')
            .context("usage: hub HOST:PORT=CODE|insecure ...")?;
        let pairing = match code {
            "insecure" => PairingMode::Insecure,
            code => PairingMode::Code(code.to_owned()),
        };
        hub.add(address, pairing)?;
        names.push(address.to_owned());
    }
    for taken in hub.by_ref().take(60) {
        let (sender, frame) = taken?;
        println!(
            "{}: frame {} {}x{}, {:.1} ms old",
            names[sender],
            frame.seq,
            frame.width,
            frame.height,
            frame.latency.as_secs_f64() * 1e3
        );
    }
    for sender in hub.close() {
        println!("{}", serde_json::to_string(&sender)?);
    }
    Ok(())
}
