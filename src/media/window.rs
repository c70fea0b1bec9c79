//! Windows (OpenCV's highgui) and the cards they show instead of video: whether a display can be
//! used at all, showing a picture, and the keys and clicks that quit.

use super::Picture;
use anyhow::{Context, Result};
use opencv::core::{self, Mat};
use opencv::highgui;
use opencv::imgproc;
use opencv::prelude::*;

/// Why a display cannot be used, or `None` when windows can be opened. Qt (Debian's highgui
/// backend) aborts the whole process when it cannot reach a display, so this is checked first.
pub fn display_unavailable() -> Option<String> {
    let Some(display) = std::env::var_os("DISPLAY").filter(|d| !d.is_empty()) else {
        return Some(if std::env::var_os("WAYLAND_DISPLAY").is_some() {
            "only a Wayland display was found and the windows need X11 (XWayland)".into()
        } else {
            "no display found (DISPLAY is not set)".into()
        });
    };
    let display = display.to_string_lossy().into_owned();
    match x11_reachable(&display) {
        Ok(()) => None,
        Err(why) => Some(format!(
            "display {display} cannot be reached: {}",
            crate::error_line(&why.into())
        )),
    }
}

/// Connects to the X server named by `display` (`[host]:N[.screen]`) the way Xlib would.
fn x11_reachable(display: &str) -> std::io::Result<()> {
    use std::time::Duration;
    let (host, rest) = display.rsplit_once(':').unwrap_or(("", display));
    let number: u16 = rest
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other("not a display name"))?;
    if host.is_empty() || host == "unix" {
        let socket = format!("/tmp/.X11-unix/X{number}");
        std::os::unix::net::UnixStream::connect(&socket).map(drop)
    } else {
        use std::net::ToSocketAddrs;
        let addr = (host, 6000 + number)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(drop)
    }
}

/// What the person at a window asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowEvent {
    None,
    /// `q` was pressed or the window was closed.
    Quit,
    /// `o` was pressed: show or hide the overlay.
    ToggleOverlay,
}

/// A highgui window; destroyed when dropped.
pub struct Window {
    title: String,
}

impl Window {
    pub fn open(title: &str) -> Result<Window> {
        highgui::named_window(title, highgui::WINDOW_AUTOSIZE | highgui::WINDOW_GUI_NORMAL)
            .with_context(|| format!("opening window {title:?}"))?;
        Ok(Window {
            title: title.to_owned(),
        })
    }

    /// Moves the window's top-left corner to `x`,`y` on the screen.
    pub fn place(&self, (x, y): (i32, i32)) -> Result<()> {
        highgui::move_window(&self.title, x, y)
            .with_context(|| format!("moving window {:?} to {x},{y}", self.title))
    }

    pub fn show(&self, picture: &Picture<'_>) -> Result<()> {
        highgui::imshow(&self.title, &picture.as_mat()?)
            .with_context(|| format!("showing {:?}", self.title))
    }

    /// Runs the window's events for up to `wait_ms` and reports a quit request.
    pub fn poll(&self, wait_ms: i32) -> Result<WindowEvent> {
        let key = highgui::wait_key(wait_ms.max(1))?;
        // highgui returns -1 or 255 for "no key", depending on the backend.
        if key > 0 && key != 255 {
            match (key & 0xff) as u8 {
                b'q' | b'Q' => return Ok(WindowEvent::Quit),
                b'o' | b'O' => return Ok(WindowEvent::ToggleOverlay),
                _ => {}
            }
        }
        let visible =
            highgui::get_window_property(&self.title, highgui::WND_PROP_VISIBLE).unwrap_or(0.0);
        Ok(if visible < 1.0 {
            WindowEvent::Quit
        } else {
            WindowEvent::None
        })
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // Nothing useful can be done about a window that will not close at exit.
        let _ = highgui::destroy_window(&self.title);
        let _ = highgui::wait_key(1);
    }
}

/// Draws `lines` of text on a dark `width`x`height` picture, as BGR rows in `out` (the way
/// sources deliver frames): what is shown instead of video ("waiting for the sender", "NO
/// SIGNAL"). The first line is large, the rest smaller; each is shrunk to fit the width.
pub fn draw_card(width: u32, height: u32, lines: &[String], out: &mut Vec<u8>) -> Result<()> {
    let size = core::Size::new(width as i32, height as i32);
    let mut card =
        Mat::new_size_with_default(size, core::CV_8UC3, BACKGROUND).context("drawing a card")?;
    let (w, h) = (f64::from(width), f64::from(height));
    let font = imgproc::FONT_HERSHEY_SIMPLEX;
    let mut y = h * 0.35;
    for (i, line) in lines.iter().enumerate() {
        let wanted = if i == 0 { w / 550.0 } else { w / 1100.0 };
        let mut baseline = 0;
        let unit =
            imgproc::get_text_size(line, font, 1.0, 1, &mut baseline).context("drawing a card")?;
        let scale = wanted.min(w * 0.88 / f64::from(unit.width.max(1)));
        let at = core::Point::new((w * 0.06) as i32, y as i32);
        write_text(&mut card, line, at, scale).context("drawing a card")?;
        y += f64::from(unit.height) * wanted * 2.2;
    }
    out.clear();
    out.extend_from_slice(card.data_bytes()?);
    Ok(())
}

/// Writes `text` in light grey on a dark box into `bgr`, a `width`x`height` picture: the text
/// `share` of the picture's height tall (shrunk to fit its width), at the top left or the bottom
/// centre. Pictures too small for legible text are left alone.
pub fn draw_label(
    (width, height): (u32, u32),
    bgr: &mut [u8],
    text: &str,
    share: f64,
    top: bool,
) -> Result<()> {
    if width < 32 || height < 16 {
        return Ok(());
    }
    let mut picture =
        Mat::new_rows_cols_with_bytes_mut::<core::Vec3b>(height as i32, width as i32, bgr)
            .with_context(|| format!("drawing {text:?}"))?;
    let font = imgproc::FONT_HERSHEY_SIMPLEX;
    // Sized as if every digit were 0 (the font's digits are all as wide), so a label that
    // changes keeps its box and covers the last one exactly.
    let template: String = text
        .chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect();
    let mut baseline = 0;
    let unit = imgproc::get_text_size(&template, font, 1.0, 1, &mut baseline)?;
    let (w, h) = (f64::from(width), f64::from(height));
    let scale =
        (h * share / f64::from(unit.height.max(1))).min(w * 0.9 / f64::from(unit.width.max(1)));
    let size = imgproc::get_text_size(&template, font, scale, thickness(scale), &mut baseline)?;
    let pad = (size.height / 3).max(2);
    let boxed = core::Size::new(size.width + 2 * pad, size.height + baseline + 2 * pad);
    let corner = match top {
        true => core::Point::new(pad, pad),
        false => core::Point::new(
            (width as i32 - boxed.width) / 2,
            height as i32 - boxed.height - pad,
        ),
    };
    imgproc::rectangle(
        &mut picture,
        core::Rect::from_point_size(corner, boxed),
        BACKGROUND,
        imgproc::FILLED,
        imgproc::LINE_8,
        0,
    )?;
    let at = core::Point::new(corner.x + pad, corner.y + pad + size.height);
    write_text(&mut picture, text, at, scale).with_context(|| format!("drawing {text:?}"))
}

/// Cards and labels: light grey text on a dark background.
const BACKGROUND: core::Scalar = core::Scalar::new(40.0, 32.0, 32.0, 0.0);
const TEXT: core::Scalar = core::Scalar::new(235.0, 235.0, 235.0, 0.0);

/// Strokes thick enough to stay legible at `scale`.
fn thickness(scale: f64) -> i32 {
    ((2.0 * scale).round() as i32).max(1)
}

/// Writes `text` (its baseline starting `at`) in the cards' font at `scale`.
fn write_text(
    picture: &mut impl core::ToInputOutputArray,
    text: &str,
    at: core::Point,
    scale: f64,
) -> opencv::Result<()> {
    let font = imgproc::FONT_HERSHEY_SIMPLEX;
    imgproc::put_text(
        picture,
        text,
        at,
        font,
        scale,
        TEXT,
        thickness(scale),
        imgproc::LINE_AA,
        false,
    )
}
