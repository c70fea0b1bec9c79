//! The receiver's window: the video with a small overlay of fps, latency and dropped frames
//! (`o` shows or hides it), the "waiting for the sender" card while it reconnects, and the keys
//! and clicks that quit. Without a window (`--headless`), all of it is a no-op.

use super::WINDOW_TITLE;
use crate::media::window::{draw_card, draw_label, Window, WindowEvent};
use crate::media::Picture;
use anyhow::Result;
use std::time::{Duration, Instant, SystemTime};

/// The picture shown while waiting, when no stream has said its size yet.
const WAITING_SIZE: (u32, u32) = (640, 360);

pub struct Screen {
    window: Option<Window>,
    /// The last stream's picture size: what the waiting card uses.
    size: Option<(u32, u32)>,
    card: Vec<u8>,
    /// The waiting card on screen: since when it counts, and the seconds it shows.
    waiting: Option<(SystemTime, u64)>,
    overlay: Overlay,
}

/// The overlay's figures, measured over half a second so they can be read as they change.
pub(super) struct Overlay {
    shown: bool,
    /// What it says (empty until the first half second is measured).
    pub(super) text: String,
    /// The picture with the overlay drawn on, shown instead of the picture.
    picture: Vec<u8>,
    since: Instant,
    frames: u32,
    latency: Duration,
    timed: u32,
}

/// The overlay's figures are this long an average.
const OVERLAY_PERIOD: Duration = Duration::from_millis(500);

impl Overlay {
    /// Shown until `o` hides it.
    pub(super) fn new() -> Overlay {
        Overlay {
            shown: true,
            text: String::new(),
            picture: Vec::new(),
            since: Instant::now(),
            frames: 0,
            latency: Duration::ZERO,
            timed: 0,
        }
    }

    /// Counts a frame shown, `latency` after its capture when that is known, with `dropped`
    /// frames missed so far.
    pub(super) fn count(&mut self, latency: Option<Duration>, dropped: u64) {
        self.frames += 1;
        if let Some(latency) = latency {
            self.latency += latency;
            self.timed += 1;
        }
        let elapsed = self.since.elapsed();
        if elapsed < OVERLAY_PERIOD {
            return;
        }
        let fps = f64::from(self.frames) / elapsed.as_secs_f64();
        let latency = match self.latency.checked_div(self.timed) {
            Some(mean) => format!("  latency {} ms", mean.as_millis()),
            None => String::new(),
        };
        self.text = format!("{fps:.1} fps{latency}  dropped {dropped}");
        (self.since, self.frames, self.latency, self.timed) =
            (Instant::now(), 0, Duration::ZERO, 0);
    }
}

impl Screen {
    pub fn open(window: bool, place: Option<(i32, i32)>) -> Result<Screen> {
        let window = match window {
            true => Some(Window::open(WINDOW_TITLE)?),
            false => None,
        };
        if let (Some(window), Some(place)) = (&window, place) {
            window.place(place)?;
        }
        Ok(Screen {
            window,
            size: None,
            card: Vec::new(),
            waiting: None,
            overlay: Overlay::new(),
        })
    }

    /// Counts a frame shown for the overlay: `latency` after its capture, when the stream says
    /// when it was captured; `dropped` frames were missed so far.
    pub fn count_frame(&mut self, latency: Option<Duration>, dropped: u64) {
        if self.window.is_some() {
            self.overlay.count(latency, dropped);
        }
    }

    /// How long to wait for a frame before looking at the window again.
    pub fn frame_wait(&self) -> Duration {
        match self.window {
            Some(_) => Duration::from_millis(5),
            None => Duration::from_millis(50),
        }
    }

    pub fn show(&mut self, picture: &Picture<'_>) -> Result<()> {
        self.waiting = None;
        self.size = Some((picture.width, picture.height));
        let Some(window) = &self.window else {
            return Ok(());
        };
        let overlay = &mut self.overlay;
        if !overlay.shown || overlay.text.is_empty() {
            return window.show(picture);
        }
        // Drawn on a copy: the picture itself is what gets recorded.
        overlay.picture.clear();
        overlay.picture.extend_from_slice(picture.bgr);
        let size = (picture.width, picture.height);
        draw_label(size, &mut overlay.picture, &overlay.text, 0.035, true)?;
        window.show(&Picture::new(size.0, size.1, &overlay.picture))
    }

    /// Shows "waiting for the sender": `name`, lost at `since`, why, and that it reconnects by
    /// itself. Drawn again only when the seconds it shows change.
    pub fn show_waiting(&mut self, name: &str, since: SystemTime, why: &str) -> Result<()> {
        let seconds = since.elapsed().unwrap_or_default().as_secs();
        if self.waiting == Some((since, seconds)) {
            return Ok(());
        }
        self.waiting = Some((since, seconds));
        self.show_card(&waiting_card(name, seconds, why))
    }

    /// Shows a card of `lines` (the first large) instead of video, at the last stream's size.
    pub fn show_card(&mut self, lines: &[String]) -> Result<()> {
        let Some(window) = &self.window else {
            return Ok(());
        };
        let (width, height) = self.size.unwrap_or(WAITING_SIZE);
        draw_card(width, height, lines, &mut self.card)?;
        window.show(&Picture::new(width, height, &self.card))
    }

    /// Whether the person at the window asked to quit, after running its events for `wait_ms`
    /// (`o` shows or hides the overlay meanwhile).
    pub fn quit_asked(&mut self, wait_ms: i32) -> Result<bool> {
        let Some(window) = &self.window else {
            return Ok(false);
        };
        Ok(match window.poll(wait_ms)? {
            WindowEvent::Quit => true,
            WindowEvent::ToggleOverlay => {
                self.overlay.shown = !self.overlay.shown;
                false
            }
            WindowEvent::None => false,
        })
    }

    /// Closes the window.
    pub fn close(&mut self) {
        self.window = None;
    }
}

/// The lines that say a sender is away: `name`, lost `seconds` ago, why, and that it comes back
/// by itself.
pub(super) fn waiting_card(name: &str, seconds: u64, why: &str) -> [String; 4] {
    [
        "waiting for the sender".to_owned(),
        format!("{name} - lost {seconds} s ago"),
        why.to_owned(),
        "reconnecting by itself; q quits".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_says_fps_latency_and_drops_each_half_second() {
        let mut overlay = Overlay::new();
        overlay.count(Some(Duration::from_millis(40)), 0);
        assert_eq!(overlay.text, "", "too soon to say");
        overlay.since = Instant::now() - Duration::from_secs(1);
        overlay.count(Some(Duration::from_millis(20)), 3);
        assert!(
            overlay
                .text
                .starts_with("2.0 fps  latency 30 ms  dropped 3")
                || overlay
                    .text
                    .starts_with("1.9 fps  latency 30 ms  dropped 3"),
            "{}",
            overlay.text
        );
        overlay.since = Instant::now() - Duration::from_secs(1);
        overlay.count(None, 3);
        assert!(overlay.text.ends_with("fps  dropped 3"), "{}", overlay.text);
    }
}
