//! Where the receiver's frames go besides the screen: the recording (`--record`) and the frame
//! log (`--frame-log`), kept across reconnections and finished however the program ends.

use super::ReceiverConfig;
use crate::media::recorder::Recorder;
use crate::media::Picture;
use crate::stats::FrameLog;
use crate::wire::protocol::StreamHello;
use anyhow::Result;
use std::path::PathBuf;

/// Frame rate written into a recording when the sender does not know its own.
const RECORD_FALLBACK_FPS: f64 = 30.0;

pub struct Outputs {
    record: Option<PathBuf>,
    recorder: Option<Recorder>,
    frame_log: Option<FrameLog>,
}

impl Outputs {
    pub fn open(config: &ReceiverConfig) -> Result<Outputs> {
        let frame_log = config
            .frame_log
            .as_deref()
            .map(FrameLog::create)
            .transpose()?;
        Ok(Outputs {
            record: config.record.clone(),
            recorder: None,
            frame_log,
        })
    }

    /// The recording starts with the first stream and keeps its size; frames of a later stream
    /// of another size are left out of it (with a warning) rather than scaled.
    pub fn start_stream(&mut self, hello: &StreamHello) -> Result<()> {
        match (&self.record, &self.recorder) {
            (Some(path), None) => {
                let fps = if hello.fps > 0.0 {
                    hello.fps
                } else {
                    RECORD_FALLBACK_FPS
                };
                self.recorder = Some(Recorder::create(path, hello.width, hello.height, fps)?);
            }
            (Some(path), Some(recorder)) if recorder.size() != (hello.width, hello.height) => {
                let (width, height) = recorder.size();
                log::warn!(
                    "the stream is now {}x{}; {} stays {width}x{height} and leaves it out",
                    hello.width,
                    hello.height,
                    path.display()
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Records a picture of the recording's size.
    pub fn record(&mut self, picture: &Picture<'_>) -> Result<()> {
        match self.recorder.as_mut() {
            Some(recorder) if recorder.size() == (picture.width, picture.height) => {
                recorder.write(picture)
            }
            _ => Ok(()),
        }
    }

    /// The frame log, when `--frame-log` asked for one.
    pub fn frame_log(&mut self) -> Option<&mut FrameLog> {
        self.frame_log.as_mut()
    }

    /// Finalises the recording and the frame log.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(log) = self.frame_log.take() {
            log.finish()?;
        }
        if let Some(recorder) = self.recorder.take() {
            let frames = recorder.finish()?;
            log::info!("recorded {frames} frames");
        }
        Ok(())
    }
}
