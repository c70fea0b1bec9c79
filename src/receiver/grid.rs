//! The `receiver` program given several senders: one window of tiles, each sender's newest
//! frame labelled with its address, frame rate, latency and frames it missed (`o` hides and
//! shows the labels), or a card while it is away. Each sender is a [`Receiver`] in a [`Hub`]: paired, recorded and reconnected on
//! its own thread, so one slow or lost sender holds up none of the others.

use super::hub::{Hub, HubSender};
use super::screen::{waiting_card, Overlay};
use super::WINDOW_TITLE;
use crate::media::mosaic::Mosaic;
use crate::media::window::{Window, WindowEvent};
use crate::media::Picture;
use crate::{error_line, Stop};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The window is drawn (when it changed) and its keys looked at this often: four senders at 30
/// fps each change it 120 times a second, and a screen shows 60.
const REDRAW: Duration = Duration::from_millis(16);
/// How often the tiles of senders that are away are brought up to date.
const CARDS: Duration = Duration::from_millis(250);

/// What the grid is shown in, and when it ends.
pub struct GridView {
    pub window: bool,
    pub window_at: Option<(i32, i32)>,
    /// End once every sender has shown this many frames (or its stream has ended).
    pub frames: Option<u64>,
}

/// The grid's window, opened before any sender is connected: opening it takes a moment (more
/// on a loaded machine), in which a connected sender would wait unread and drop frames.
pub struct Grid {
    names: Vec<String>,
    window: Option<Window>,
    mosaic: Mosaic,
    tiles: Vec<Tile>,
    /// End once every sender has shown this many frames (or its stream has ended).
    limit: Option<u64>,
    /// The first sender that failed.
    failed: Option<anyhow::Error>,
    /// The tiles' labels are shown (`o` hides and shows them).
    labels: bool,
}

struct Tile {
    overlay: Overlay,
    shown: u64,
    last_seq: Option<u64>,
    /// Frames of this sender the tile did not show.
    missed: u64,
    /// The card on the tile: since when and for how many seconds it counts.
    card: Option<(SystemTime, u64)>,
    /// Its sender's stream has ended.
    ended: bool,
}

impl Grid {
    /// Opens the window (with `view.window`) with a card on each sender's tile until its first
    /// frame: `names` are the senders' addresses, in the order they are added to the hub.
    pub fn open(names: Vec<String>, view: &GridView) -> Result<Grid> {
        let mut mosaic = Mosaic::new(names.len());
        for (i, name) in names.iter().enumerate() {
            mosaic.put_card(i, &[name.clone(), "waiting for its first frame".into()])?;
        }
        let window = match view.window {
            true => Some(Window::open(WINDOW_TITLE)?),
            false => None,
        };
        if let Some(window) = &window {
            if let Some(place) = view.window_at {
                window.place(place)?;
            }
            window.show(&mosaic.picture())?;
            window.poll(1)?;
        }
        let tiles = names
            .iter()
            .map(|_| Tile {
                overlay: Overlay::new(),
                shown: 0,
                last_seq: None,
                missed: 0,
                card: None,
                ended: false,
            })
            .collect();
        Ok(Grid {
            names,
            window,
            mosaic,
            tiles,
            limit: view.frames,
            failed: None,
            labels: true,
        })
    }

    /// Shows the senders of `hub` (added in the order of the names the grid opened with) until
    /// the user quits, the frame limit is reached, or every sender's stream has ended;
    /// `senders` then says how each went. An error is the first sender whose stream broke
    /// (without reconnecting) or that came back with another code.
    pub fn run(mut self, mut hub: Hub, stop: &Stop, senders: &mut Vec<HubSender>) -> Result<()> {
        let shown = self.show(&mut hub, stop);
        *senders = hub.close();
        shown.and(self.failed.map_or(Ok(()), Err))
    }

    /// Takes each frame as it comes into its tile; the window is drawn (when it changed) and
    /// its events run once every [`REDRAW`], not once a frame.
    fn show(&mut self, hub: &mut Hub, stop: &Stop) -> Result<()> {
        let limit = self.limit;
        let (mut looked, mut carded) = (Instant::now(), Instant::now());
        let mut changed = true;
        while !stop.is_raised() {
            let done = |tile: &Tile| limit.is_some_and(|limit| tile.shown >= limit) || tile.ended;
            if limit.is_some() && self.tiles.iter().all(done) {
                return Ok(());
            }
            let wait = match self.window {
                Some(_) => REDRAW.saturating_sub(looked.elapsed()),
                None => Duration::from_millis(50),
            };
            match hub.next_timeout(wait) {
                None => return Ok(()),
                Some(Ok(Some((index, frame)))) => {
                    let tile = &mut self.tiles[index];
                    tile.count(frame.seq, frame.latency);
                    let label = match self.labels {
                        true => format!("{}  {}", self.names[index], tile.overlay.text),
                        false => String::new(),
                    };
                    let picture = Picture::new(frame.width, frame.height, &frame.bgr);
                    self.mosaic.put(index, &picture, label.trim_end())?;
                    changed = true;
                }
                Some(Ok(None)) => {}
                Some(Err(e)) => {
                    log::warn!("{}", error_line(&e));
                    self.failed.get_or_insert(e);
                }
            }
            if carded.elapsed() >= CARDS {
                changed |= self.put_cards(&hub.senders())?;
                carded = Instant::now();
            }
            let Some(window) = &self.window else {
                continue;
            };
            if looked.elapsed() < REDRAW {
                continue;
            }
            if changed {
                window.show(&self.mosaic.picture())?;
                changed = false;
            }
            looked = Instant::now();
            match window.poll(1)? {
                WindowEvent::Quit => return Ok(()),
                WindowEvent::ToggleOverlay => self.labels = !self.labels,
                WindowEvent::None => {}
            }
        }
        Ok(())
    }

    /// Cards on the tiles of senders that are away or ended; whether any tile changed.
    fn put_cards(&mut self, senders: &[HubSender]) -> Result<bool> {
        let mut changed = false;
        for (index, sender) in senders.iter().enumerate() {
            let tile = &mut self.tiles[index];
            tile.ended = sender.ended;
            let (card, lines) = match (&sender.lost, sender.ended) {
                (_, true) => (
                    (SystemTime::UNIX_EPOCH, u64::MAX),
                    vec![sender.sender.clone(), "the stream has ended".into()],
                ),
                (Some((since, why)), false) => {
                    let seconds = since.elapsed().unwrap_or_default().as_secs();
                    let lines = waiting_card(&sender.sender, seconds, why).to_vec();
                    ((*since, seconds), lines)
                }
                (None, false) => {
                    tile.card = None;
                    continue;
                }
            };
            if tile.card != Some(card) {
                tile.card = Some(card);
                self.mosaic.put_card(index, &lines)?;
                changed = true;
            }
        }
        Ok(changed)
    }
}

impl Tile {
    fn count(&mut self, seq: u64, latency: Duration) {
        if let Some(last) = self.last_seq.filter(|&last| seq > last) {
            self.missed += seq - last - 1;
        }
        self.last_seq = Some(seq);
        self.shown += 1;
        self.overlay.count(Some(latency), self.missed);
    }
}

/// Where sender `index` (from 0) of several is recorded when `--record` names `path`: the
/// file's name with the sender's number from 1 (`cams.mkv` gives `cams-1.mkv`, `cams-2.mkv`).
pub fn numbered(path: &Path, index: usize) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(extension) => format!("{stem}-{}.{}", index + 1, extension.to_string_lossy()),
        None => format!("{stem}-{}", index + 1),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sender_records_to_the_file_numbered_for_it() {
        let numbered = |path: &str, i| numbered(Path::new(path), i);
        assert_eq!(numbered("cams.mkv", 0), Path::new("cams-1.mkv"));
        assert_eq!(
            numbered("/tmp/rec/cams.mp4", 2),
            Path::new("/tmp/rec/cams-3.mp4")
        );
        assert_eq!(numbered("cams", 1), Path::new("cams-2"));
    }
}
