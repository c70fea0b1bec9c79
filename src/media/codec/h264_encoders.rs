//! Which H.264 encoder encodes: libx264 in software, or a hardware encoder this FFmpeg has
//! (NVIDIA's NVENC, Intel's Quick Sync, VAAPI on Intel and AMD GPUs, V4L2 memory-to-memory on a
//! Raspberry Pi 4 and other boards). `--encoder auto` tries each hardware encoder FFmpeg has a
//! device for, in [`KINDS`]' order, and falls back to libx264, logging what it chose and why.
//!
//! What each takes from FFmpeg 5.1's wrappers (read from their sources; only libx264 runs here,
//! for want of the hardware): a forced keyframe (`pict_type` I) is an IDR picture in all of
//! them; a new bit rate mid-stream (`--bitrate auto`) reaches libx264 and NVENC only, the others
//! keep the rate they opened with. Some (V4L2 on a Pi) send the parameter sets once, not before
//! every keyframe: [`super::h264`] puts them back.

use crate::media::camera;
use anyhow::{anyhow, bail, Context, Result};
use ffmpeg::format::Pixel;
use ffmpeg::{codec, encoder, ffi, frame, Dictionary};
use ffmpeg_next as ffmpeg;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `--encoder`: `auto`, or an FFmpeg encoder by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EncoderChoice {
    #[default]
    Auto,
    Named(String),
}

impl std::str::FromStr for EncoderChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<EncoderChoice, String> {
        match text {
            "auto" => Ok(EncoderChoice::Auto),
            name if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                Ok(EncoderChoice::Named(name.to_owned()))
            }
            _ => Err(format!(
                "invalid encoder \"{text}\": use auto, libx264, or an FFmpeg H.264 encoder such as h264_vaapi"
            )),
        }
    }
}

/// The software encoder, always there to fall back to.
pub const SOFTWARE: &str = "libx264";

/// An H.264 encoder this program knows how to drive.
pub struct Kind {
    pub name: &'static str,
    /// What it needs that a machine may lack.
    device: Device,
    /// What its pictures must be given as (before upload, for one that takes GPU frames).
    pub input: Pixel,
    /// Whether pictures go to it as frames in GPU memory (VAAPI).
    gpu_frames: bool,
    options: &'static [(&'static str, &'static str)],
    /// Whether a new bit rate reaches it mid-stream.
    pub retunes: bool,
}

enum Device {
    None,
    /// Any file whose name starts so, like `/dev/nvidia` (`/dev/nvidia0`).
    Prefixed(&'static str, &'static str),
    /// A V4L2 memory-to-memory device (FFmpeg picks the one that encodes H.264).
    MemoryToMemory,
}

/// The hardware encoders, in the order `auto` tries them, then libx264.
pub const KINDS: [Kind; 5] = [
    Kind {
        name: "h264_nvenc",
        device: Device::Prefixed("/dev", "nvidia"),
        input: Pixel::YUV420P,
        gpu_frames: false,
        // Its lowest-latency tuning, one frame in and one out, constant bit rate.
        options: &[
            ("preset", "p4"),
            ("tune", "ull"),
            ("zerolatency", "1"),
            ("delay", "0"),
            ("rc", "cbr"),
            ("forced-idr", "1"),
        ],
        retunes: true,
    },
    Kind {
        name: "h264_qsv",
        device: Device::Prefixed("/dev/dri", "renderD"),
        input: Pixel::NV12,
        gpu_frames: false,
        options: &[
            ("preset", "veryfast"),
            ("async_depth", "1"),
            ("look_ahead", "0"),
            ("forced_idr", "1"),
        ],
        retunes: false,
    },
    Kind {
        name: "h264_vaapi",
        device: Device::Prefixed("/dev/dri", "renderD"),
        input: Pixel::NV12,
        gpu_frames: true,
        options: &[("async_depth", "1"), ("rc_mode", "CBR")],
        retunes: false,
    },
    Kind {
        name: "h264_v4l2m2m",
        device: Device::MemoryToMemory,
        input: Pixel::YUV420P,
        gpu_frames: false,
        options: &[],
        retunes: false,
    },
    Kind {
        name: SOFTWARE,
        device: Device::None,
        input: Pixel::YUV420P,
        gpu_frames: false,
        // Tuned for latency (no B-frames, no lookahead, sliced threads), at the preset chosen
        // by measuring (see the README).
        options: &[
            ("preset", "veryfast"),
            ("tune", "zerolatency"),
            ("forced-idr", "1"),
        ],
        retunes: true,
    },
];

/// An opened encoder, and the GPU frames it is fed through when it wants them.
pub struct Opened {
    pub encoder: encoder::Video,
    pub kind: &'static Kind,
    pub gpu: Option<GpuFrames>,
}

/// Opens the encoder `choice` names, or for `auto` the first that opens, with `configure`
/// setting size, rates and keyframes on the context first.
pub fn open(
    choice: &EncoderChoice,
    configure: &dyn Fn(&mut encoder::video::Video),
) -> Result<Opened> {
    let name = match choice {
        EncoderChoice::Named(name) => name,
        EncoderChoice::Auto => return open_auto(configure),
    };
    let Some(kind) = KINDS.iter().find(|kind| kind.name == name) else {
        let known = encoder::find_by_name(name).is_some();
        bail!(
            "--encoder {name}: {}; use auto or one of {}",
            match known {
                true => "not an H.264 encoder camstream knows how to drive",
                false => "this FFmpeg has no such encoder",
            },
            available().join(", ")
        );
    };
    open_kind(kind, configure).with_context(|| format!("opening the H.264 encoder {name}"))
}

/// What `auto` chose first in this process: the side encodes (for browser tabs and media
/// servers) opened later take the same one without trying the others again.
static AUTO_CHOSEN: Mutex<Option<&'static Kind>> = Mutex::new(None);

fn open_auto(configure: &dyn Fn(&mut encoder::video::Video)) -> Result<Opened> {
    let chosen = *crate::lock(&AUTO_CHOSEN);
    if let Some(opened) = chosen.and_then(|kind| open_kind(kind, configure).ok()) {
        return Ok(opened);
    }
    let mut passed = Vec::new();
    for kind in &KINDS {
        match open_kind(kind, configure) {
            Ok(opened) => {
                let why = match passed.is_empty() {
                    true => String::new(),
                    false => format!(" ({})", passed.join("; ")),
                };
                log::info!("H.264 encoder: {}{why}", kind.name);
                *crate::lock(&AUTO_CHOSEN) = Some(kind);
                return Ok(opened);
            }
            Err(e) => passed.push(format!("not {}: {}", kind.name, crate::error_line(&e))),
        }
    }
    bail!("no H.264 encoder opened: {}", passed.join("; "))
}

/// The encoders in [`KINDS`] this FFmpeg has.
fn available() -> Vec<&'static str> {
    (KINDS.iter())
        .filter(|kind| encoder::find_by_name(kind.name).is_some())
        .map(|kind| kind.name)
        .collect()
}

impl Kind {
    /// Why it cannot be used here, if a look at FFmpeg and `/dev` can tell.
    fn missing(&self) -> Option<String> {
        if encoder::find_by_name(self.name).is_none() {
            return Some("this FFmpeg does not have it".to_owned());
        }
        match self.device {
            Device::None => None,
            Device::Prefixed(dir, prefix) => match first_device(dir, prefix) {
                Some(_) => None,
                None => Some(format!("no {dir}/{prefix}* device")),
            },
            Device::MemoryToMemory => match camera::memory_to_memory_devices().is_empty() {
                true => Some("no V4L2 memory-to-memory device".to_owned()),
                false => None,
            },
        }
    }
}

fn first_device(dir: &str, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .map(|entry| entry.path())
        .collect();
    found.sort();
    found.into_iter().next()
}

fn open_kind(
    kind: &'static Kind,
    configure: &dyn Fn(&mut encoder::video::Video),
) -> Result<Opened> {
    if let Some(why) = kind.missing() {
        bail!(why);
    }
    let codec = encoder::find_by_name(kind.name)
        .ok_or_else(|| anyhow!("this FFmpeg has no {} encoder", kind.name))?;
    let mut video = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .with_context(|| format!("setting up {}", kind.name))?;
    configure(&mut video);
    video.set_format(kind.input);
    let gpu = match kind.gpu_frames {
        true => {
            let Device::Prefixed(dir, prefix) = kind.device else {
                bail!("{} takes GPU frames but names no device", kind.name);
            };
            let path = first_device(dir, prefix)
                .ok_or_else(|| anyhow!("no {dir}/{prefix}* device (a GPU's render node)"))?;
            let gpu = GpuFrames::vaapi(&path, video.width(), video.height(), kind.input)?;
            gpu.attach(&mut video);
            Some(gpu)
        }
        false => None,
    };
    let mut options = Dictionary::new();
    for (key, value) in kind.options {
        options.set(key, value);
    }
    let (width, height) = (video.width(), video.height());
    let encoder = video
        .open_with(options)
        .with_context(|| format!("opening {} for {width}x{height}", kind.name))?;
    Ok(Opened { encoder, kind, gpu })
}

/// A pool of VAAPI surfaces on a GPU, and the frame each picture is uploaded into.
pub struct GpuFrames {
    device: *mut ffi::AVBufferRef,
    frames: *mut ffi::AVBufferRef,
    uploaded: frame::Video,
}

impl GpuFrames {
    fn vaapi(path: &Path, width: u32, height: u32, input: Pixel) -> Result<GpuFrames> {
        let name = CString::new(path.as_os_str().as_encoded_bytes())
            .with_context(|| format!("device path {}", path.display()))?;
        let mut gpu = GpuFrames {
            device: std::ptr::null_mut(),
            frames: std::ptr::null_mut(),
            uploaded: frame::Video::empty(),
        };
        // SAFETY: FFmpeg allocates both references; `gpu` owns them and unrefs them when
        // dropped, null or not. The frames context's fields are set before it is initialised,
        // as FFmpeg's API asks.
        unsafe {
            let made = ffi::av_hwdevice_ctx_create(
                &mut gpu.device,
                ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
                name.as_ptr(),
                std::ptr::null_mut(),
                0,
            );
            if made < 0 {
                bail!(
                    "opening VAAPI on {}: {}",
                    path.display(),
                    ffmpeg::Error::from(made)
                );
            }
            gpu.frames = ffi::av_hwframe_ctx_alloc(gpu.device);
            if gpu.frames.is_null() {
                bail!("allocating VAAPI frames on {}", path.display());
            }
            let context = (*gpu.frames).data as *mut ffi::AVHWFramesContext;
            (*context).format = Pixel::VAAPI.into();
            (*context).sw_format = input.into();
            (*context).width = width as i32;
            (*context).height = height as i32;
            (*context).initial_pool_size = 8;
            let initialised = ffi::av_hwframe_ctx_init(gpu.frames);
            if initialised < 0 {
                bail!(
                    "setting up {width}x{height} VAAPI frames on {}: {}",
                    path.display(),
                    ffmpeg::Error::from(initialised)
                );
            }
        }
        Ok(gpu)
    }

    /// Tells the encoder to take its pictures as these frames.
    fn attach(&self, video: &mut encoder::video::Video) {
        video.set_format(Pixel::VAAPI);
        // SAFETY: the context takes a reference of its own, released when it is freed.
        unsafe {
            (*video.as_mut_ptr()).hw_frames_ctx = ffi::av_buffer_ref(self.frames);
        }
    }

    /// `picture` copied into a GPU frame, with its timestamp and picture type.
    pub fn upload(&mut self, picture: &frame::Video) -> Result<&frame::Video> {
        self.uploaded = frame::Video::empty();
        // SAFETY: both frames are valid; FFmpeg gives `uploaded` a surface from the pool and
        // copies the picture's planes into it.
        unsafe {
            let got = ffi::av_hwframe_get_buffer(self.frames, self.uploaded.as_mut_ptr(), 0);
            if got < 0 {
                bail!("taking a VAAPI frame: {}", ffmpeg::Error::from(got));
            }
            let copied =
                ffi::av_hwframe_transfer_data(self.uploaded.as_mut_ptr(), picture.as_ptr(), 0);
            if copied < 0 {
                bail!(
                    "uploading a picture to the GPU: {}",
                    ffmpeg::Error::from(copied)
                );
            }
        }
        self.uploaded.set_pts(picture.pts());
        self.uploaded.set_kind(picture.kind());
        Ok(&self.uploaded)
    }
}

impl Drop for GpuFrames {
    fn drop(&mut self) {
        // SAFETY: each is null or a reference we own; unref sets it to null.
        unsafe {
            ffi::av_buffer_unref(&mut self.frames);
            ffi::av_buffer_unref(&mut self.device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_is_auto_or_an_encoders_name() {
        assert_eq!("auto".parse(), Ok(EncoderChoice::Auto));
        assert_eq!(
            "h264_vaapi".parse(),
            Ok(EncoderChoice::Named("h264_vaapi".to_owned()))
        );
        assert!("".parse::<EncoderChoice>().is_err());
        assert!("x; rm".parse::<EncoderChoice>().is_err());
    }
}
