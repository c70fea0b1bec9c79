//! The receiver's window: the video, the "waiting for the sender" card while it reconnects, and
//! the keys and clicks that quit. Without a window (`--headless`), all of it is a no-op.

use super::WINDOW_TITLE;
use crate::media::window::{draw_card, Window, WindowEvent};
use crate::media::Picture;
use anyhow::Result;
use std::time::{Duration, SystemTime};

/// The picture shown while waiting, when no stream has said its size yet.
const WAITING_SIZE: (u32, u32) = (640, 360);

pub struct Screen {
    window: Option<Window>,
    /// The last stream's picture size: what the waiting card uses.
    size: Option<(u32, u32)>,
    card: Vec<u8>,
    /// The waiting card on screen: since when it counts, and the seconds it shows.
    waiting: Option<(SystemTime, u64)>,
}

impl Screen {
    pub fn open(window: bool) -> Result<Screen> {
        Ok(Screen {
            window: match window {
                true => Some(Window::open(WINDOW_TITLE)?),
                false => None,
            },
            size: None,
            card: Vec::new(),
            waiting: None,
        })
    }

    pub fn start_stream(&mut self, width: u32, height: u32) {
        self.size = Some((width, height));
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
        match &self.window {
            Some(window) => window.show(picture),
            None => Ok(()),
        }
    }

    /// Shows "waiting for the sender": `name`, lost at `since`, why, and that it reconnects by
    /// itself. Drawn again only when the seconds it shows change.
    pub fn show_waiting(&mut self, name: &str, since: SystemTime, why: &str) -> Result<()> {
        let seconds = since.elapsed().unwrap_or_default().as_secs();
        if self.waiting == Some((since, seconds)) {
            return Ok(());
        }
        self.waiting = Some((since, seconds));
        self.show_card(&[
            "waiting for the sender".to_owned(),
            format!("{name} - lost {seconds} s ago"),
            why.to_owned(),
            "reconnecting by itself; q quits".to_owned(),
        ])
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

    /// Whether the person at the window asked to quit, after running its events for `wait_ms`.
    pub fn quit_asked(&self, wait_ms: i32) -> Result<bool> {
        match &self.window {
            Some(window) => Ok(window.poll(wait_ms)? == WindowEvent::Quit),
            None => Ok(false),
        }
    }

    /// Closes the window.
    pub fn close(&mut self) {
        self.window = None;
    }
}
