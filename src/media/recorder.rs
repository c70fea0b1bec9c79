//! Files for the video as it arrived: the container and codec follow the file's extension.

use super::Picture;
use anyhow::{bail, Context, Result};
use opencv::core;
use opencv::prelude::*;
use opencv::videoio;
use std::path::{Path, PathBuf};

/// Writes frames to a video file; the container and codec follow the file's extension.
pub struct Recorder {
    writer: videoio::VideoWriter,
    path: PathBuf,
    size: (u32, u32),
    frames: u64,
}

impl Recorder {
    /// `.mkv` is lossless FFV1, `.avi` MJPG, `.mp4` mp4v.
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Recorder> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let code = match extension.as_deref() {
            Some("mkv") => *b"FFV1",
            Some("avi") => *b"MJPG",
            Some("mp4") => *b"mp4v",
            _ => bail!(
                "recording to {}: unknown extension (use .mkv, .avi or .mp4)",
                path.display()
            ),
        };
        let [a, b, c, d] = code.map(char::from);
        let fourcc = videoio::VideoWriter::fourcc(a, b, c, d)?;
        let size = core::Size::new(width as i32, height as i32);
        let name = path.to_string_lossy();
        let writer = videoio::VideoWriter::new_with_backend(
            name.as_ref(),
            videoio::CAP_FFMPEG,
            fourcc,
            fps,
            size,
            true,
        )
        .with_context(|| format!("recording to {}", path.display()))?;
        if !writer.is_opened().unwrap_or(false) {
            bail!(
                "recording to {}: OpenCV could not create the file (does its folder exist?)",
                path.display()
            );
        }
        Ok(Recorder {
            writer,
            path: path.to_owned(),
            size: (width, height),
            frames: 0,
        })
    }

    /// Picture size in pixels; every frame written must have it.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    pub fn write(&mut self, picture: &Picture<'_>) -> Result<()> {
        self.writer
            .write(&picture.as_mat()?)
            .with_context(|| format!("recording to {}", self.path.display()))?;
        self.frames += 1;
        Ok(())
    }

    /// Finalises the file (index, trailer); also done on drop, where errors cannot be reported.
    pub fn finish(mut self) -> Result<u64> {
        self.writer
            .release()
            .with_context(|| format!("finishing {}", self.path.display()))?;
        Ok(self.frames)
    }
}
