//! Where the receiver's frames go besides the screen: the recording (`--record`) and the frame
//! log (`--frame-log`), kept across reconnections and finished however the program ends.

use super::ReceiverConfig;
use crate::media::recorder::Recorder;
use crate::media::Picture;
use crate::stats::FrameLog;
use crate::wire::protocol::{FrameHeader, StreamHello};
use anyhow::Result;
use std::path::PathBuf;

/// Frame rate written into a recording when the sender does not know its own.
const RECORD_FALLBACK_FPS: f64 = 30.0;

pub struct Outputs {
    record: Option<PathBuf>,
    recorder: Option<Recorder>,
    /// The current stream fits the recording.
    recording: bool,
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
            recording: false,
            frame_log,
        })
    }

    /// The recording starts with the first stream and keeps its size (and its codec, when it
    /// holds the frames as they came); frames of a later stream that does not fit are left out
    /// of it, with a warning, rather than scaled or re-encoded.
    pub fn start_stream(&mut self, hello: &StreamHello) -> Result<()> {
        let Some(path) = &self.record else {
            return Ok(());
        };
        self.recording = match self.recorder.as_ref() {
            None => {
                let fps = if hello.fps > 0.0 {
                    hello.fps
                } else {
                    RECORD_FALLBACK_FPS
                };
                self.recorder = Some(Recorder::create(path, hello, fps)?);
                true
            }
            Some(recorder) if recorder.accepts(hello) => true,
            Some(_) => {
                log::warn!(
                    "the stream is now {}x{} {}; {} was started with another and leaves it out",
                    hello.width,
                    hello.height,
                    hello.codec,
                    path.display()
                );
                false
            }
        };
        Ok(())
    }

    /// Records a frame of the current stream: its bytes, and its picture when decoded.
    pub fn record(
        &mut self,
        header: &FrameHeader,
        data: &[u8],
        picture: Option<&Picture<'_>>,
    ) -> Result<()> {
        match self.recorder.as_mut() {
            Some(recorder) if self.recording => recorder.write(header, data, picture),
            _ => Ok(()),
        }
    }

    /// Stops recording after a frame could not be written (a full disk): what was written is
    /// finished, so the file plays up to there.
    pub fn stop_recording(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            let _ = recorder.finish();
        }
        self.record = None;
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
        if let (Some(recorder), Some(path)) = (self.recorder.take(), &self.record) {
            let frames = recorder.finish()?;
            log::info!("recorded {frames} frames to {}", path.display());
        }
        Ok(())
    }
}
