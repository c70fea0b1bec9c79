//! What pictures are read from, whatever the source: the [`Capture`] trait, what a read gives
//! ([`Pixels`]) and what a source found ([`Next`]), and the captures that wrap another: one whose
//! JPEG pictures are decoded ([`Decoded`]), one scaled to another size ([`Scaled`]). Both
//! [`super::source`] and [`super::live`] build on these. [`SourcePicture`] holds what a read
//! gave, decoding a JPEG only when its pixels are wanted.

use super::codec::{self, Decoder};
use super::logs::Tally;
use crate::wire::protocol::{Codec, FrameHeader, PixelFormat};
use anyhow::{bail, Context, Result};
use opencv::core::Mat;
use opencv::prelude::*;
use std::time::{Duration, SystemTime};

/// A source that has delivered nothing for this long is lost, even if its read never returns
/// (unless its capture allows longer: [`Capture::silence_limit`]).
pub const SIGNAL_TIMEOUT: Duration = Duration::from_millis(1500);

/// Something pictures are read from, one after another: an OpenCV capture, the test pattern, or
/// a test's fake camera.
pub trait Capture: Send {
    /// What the user calls it: "camera 0", "video file clip.mkv", "test pattern".
    fn name(&self) -> &str;
    /// Picture size in pixels; every picture has it.
    fn size(&self) -> (u32, u32);
    /// The rate the source says it runs at, if it says.
    fn native_fps(&self) -> Option<f64>;
    /// How long it may deliver nothing before it counts as lost (a stream that comes in
    /// bursts, like HLS, needs longer than a camera).
    fn silence_limit(&self) -> Duration {
        SIGNAL_TIMEOUT
    }
    /// What its reads give.
    fn pixels(&self) -> Pixels {
        Pixels::Bgr
    }
    /// Reads the next picture into `out`, as [`Capture::pixels`] says. `Ok(false)`: the source
    /// ended or stopped.
    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool>;
}

/// What a picture's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixels {
    /// BGR rows of the picture's size.
    Bgr,
    /// One JPEG picture of that size, as the camera, pipeline or file made it.
    Jpeg,
}

/// Opens (and later reopens) the capture behind a live source.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Capture>> + Send>;

/// What [`super::source::Source::next_into`] (and a live source) found.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A new picture (BGR), captured at this time, is in the buffer.
    Frame(SystemTime),
    /// A new JPEG picture, as the source made it, is in the buffer: only from a source opened
    /// with [`super::source::SourceRequest::keep_jpeg`].
    Jpeg(SystemTime),
    /// No new picture yet; the source is fine.
    Waiting,
    /// A live source is lost: since when, and why.
    Lost { since: SystemTime, why: String },
    /// A file (or the pattern, never) reached its end.
    Ended,
}

/// Turns a source's JPEG pictures into BGR, for what needs pixels: the preview, another codec,
/// scaling.
pub struct JpegPictures {
    decoder: Box<dyn Decoder>,
}

impl JpegPictures {
    pub fn new() -> Result<JpegPictures> {
        Ok(JpegPictures {
            decoder: codec::format(Codec::Jpeg).decoder()?,
        })
    }

    /// Decodes `jpeg`, which must be a `size` picture, into BGR rows in `out`.
    pub fn decode_into(&mut self, jpeg: &[u8], size: (u32, u32), out: &mut Vec<u8>) -> Result<()> {
        let header = FrameHeader {
            seq: 0,
            capture_unix_us: 0,
            width: size.0,
            height: size.1,
            pixel_format: PixelFormat::Bgr8,
            codec: Codec::Jpeg,
            keyframe: true,
        };
        let Some(picture) = self.decoder.decode(&header, jpeg)? else {
            bail!("decoding jpeg: no picture came out");
        };
        out.clear();
        out.extend_from_slice(picture.bgr);
        Ok(())
    }
}

/// A JPEG capture whose pictures are decoded as they are read.
pub(crate) struct Decoded {
    inner: Box<dyn Capture>,
    jpeg: Vec<u8>,
    pictures: Option<JpegPictures>,
}

impl Decoded {
    pub(crate) fn new(inner: Box<dyn Capture>) -> Decoded {
        Decoded {
            inner,
            jpeg: Vec::new(),
            pictures: None,
        }
    }
}

impl Capture for Decoded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn size(&self) -> (u32, u32) {
        self.inner.size()
    }

    fn native_fps(&self) -> Option<f64> {
        self.inner.native_fps()
    }

    fn silence_limit(&self) -> Duration {
        self.inner.silence_limit()
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if !self.inner.read_into(&mut self.jpeg)? {
            return Ok(false);
        }
        let pictures = match &mut self.pictures {
            Some(pictures) => pictures,
            empty => empty.insert(JpegPictures::new()?),
        };
        let (size, name) = (self.inner.size(), self.inner.name());
        pictures
            .decode_into(&self.jpeg, size, out)
            .with_context(|| format!("reading {name}"))?;
        Ok(true)
    }
}

/// A capture whose pictures are scaled to another size: a camera that came back at another
/// size than the stream it feeds.
pub(crate) struct Scaled {
    inner: Box<dyn Capture>,
    size: (u32, u32),
    /// The picture as the capture delivered it.
    read: Vec<u8>,
    scaled: Mat,
}

impl Scaled {
    pub(crate) fn new(inner: Box<dyn Capture>, size: (u32, u32)) -> Scaled {
        Scaled {
            inner,
            size,
            read: Vec::new(),
            scaled: Mat::default(),
        }
    }
}

impl Capture for Scaled {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn native_fps(&self) -> Option<f64> {
        self.inner.native_fps()
    }

    fn silence_limit(&self) -> Duration {
        self.inner.silence_limit()
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if !self.inner.read_into(&mut self.read)? {
            return Ok(false);
        }
        let (from, to) = (self.inner.size(), self.size);
        let picture = super::Picture::new(from.0, from.1, &self.read);
        let name = self.inner.name();
        picture
            .scale_into(to, &mut self.scaled)
            .with_context(|| format!("scaling {name}"))?;
        out.clear();
        out.extend_from_slice(self.scaled.data_bytes()?);
        Ok(true)
    }
}

/// The source's newest picture as it came, and its pixels once something needed them: a JPEG
/// is decoded only when its pixels are asked for (the sender passes it on as it came).
pub struct SourcePicture {
    /// The picture as the source gave it: BGR rows, or a JPEG.
    pub bytes: Vec<u8>,
    pub pixels: Pixels,
    size: (u32, u32),
    /// A JPEG's pixels, when `decoded` says they are this picture's.
    bgr: Vec<u8>,
    decoded: bool,
    jpeg: Option<JpegPictures>,
    /// JPEG pictures that did not decode, reported at most once a minute.
    undecodable: Tally,
}

impl SourcePicture {
    pub fn new(size: (u32, u32)) -> SourcePicture {
        SourcePicture {
            bytes: Vec::new(),
            pixels: Pixels::Bgr,
            size,
            bgr: Vec::new(),
            decoded: false,
            jpeg: None,
            undecodable: Tally::default(),
        }
    }

    /// Notes that `bytes` now holds a new picture of `pixels`; returns `at`.
    pub fn is(&mut self, pixels: Pixels, at: SystemTime) -> SystemTime {
        self.pixels = pixels;
        self.decoded = false;
        at
    }

    /// The picture's BGR rows, decoding a JPEG the first time they are asked for; `None` if it
    /// does not decode (a camera's damaged picture is skipped, not the end of the stream).
    pub fn bgr(&mut self) -> Result<Option<&mut Vec<u8>>> {
        if self.pixels == Pixels::Bgr {
            return Ok(Some(&mut self.bytes));
        }
        if !self.decoded {
            let jpeg = match &mut self.jpeg {
                Some(jpeg) => jpeg,
                empty => empty.insert(JpegPictures::new()?),
            };
            if let Err(e) = jpeg.decode_into(&self.bytes, self.size, &mut self.bgr) {
                if let Some(count) = self.undecodable.count(1) {
                    log::warn!("{count} of the source's JPEG pictures did not decode (reported at most once a minute): {e:#}");
                }
                return Ok(None);
            }
            self.decoded = true;
        }
        Ok(Some(&mut self.bgr))
    }
}
