//! The libraries' own log lines. FFmpeg prints a line for every damaged frame (`[mjpeg @ …]`),
//! from our calls and from OpenCV's, which would bury our one-line messages: its lines are
//! counted instead, and reported through our log at most once a minute with one example.
//! OpenCV's own warnings are turned down to errors.

use ffmpeg_next::ffi;
use opencv::core;
use std::sync::Once;

/// Quiets both libraries, once: FFmpeg's lines are counted, OpenCV's warnings go.
pub fn quiet_library_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Failing to change the level leaves OpenCV's default: noisier, not wrong.
        let _ = core::set_log_level(core::LogLevel::LOG_LEVEL_ERROR);
        // SAFETY: the callback is a plain function that is safe to call from any thread.
        // OpenCV sets only FFmpeg's level (to errors) when it starts FFmpeg, not the callback,
        // so ours stays; the callback does its own filtering.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            ffi::av_log_set_callback(Some(counting::on_ffmpeg_line))
        };
        // Elsewhere a `va_list` is another type (aarch64's is a struct): FFmpeg is silenced
        // instead of counted.
        // SAFETY: sets a level, nothing more.
        #[cfg(not(target_arch = "x86_64"))]
        unsafe {
            ffi::av_log_set_level(ffi::AV_LOG_QUIET)
        };
    });
}

/// FFmpeg's lines, counted (x86_64 only: the callback takes a `va_list`, a pointer here and a
/// struct on aarch64).
#[cfg(target_arch = "x86_64")]
mod counting {
    use ffmpeg_next::ffi;
    use std::ffi::CStr;
    use std::os::raw::{c_char, c_int, c_void};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// FFmpeg's problems are reported at most this often.
    const REPORT_INTERVAL: Duration = Duration::from_secs(60);

    /// Problems FFmpeg reported since the last report.
    static UNREPORTED: AtomicU64 = AtomicU64::new(0);
    /// When the last report was made.
    static LAST_REPORT: Mutex<Option<Instant>> = Mutex::new(None);

    /// Counts one of FFmpeg's lines if it is a problem (an error or worse), and reports the count
    /// when the last report is a minute old. FFmpeg calls it from any of its threads.
    pub(super) unsafe extern "C" fn on_ffmpeg_line(
        context: *mut c_void,
        level: c_int,
        format: *const c_char,
        args: *mut ffi::__va_list_tag,
    ) {
        if level > ffi::AV_LOG_ERROR {
            return;
        }
        UNREPORTED.fetch_add(1, Ordering::Relaxed);
        // Another thread is reporting: this one is counted in its report or the next.
        let Ok(mut last) = LAST_REPORT.try_lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < REPORT_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let count = UNREPORTED.swap(0, Ordering::Relaxed);
        let mut line = [0 as c_char; 256];
        let mut prefix: c_int = 1;
        // SAFETY: FFmpeg formats its own arguments into our buffer, truncating to its size and
        // always ending it with a NUL; `args` is used once, here.
        let example = unsafe {
            ffi::av_log_format_line2(
                context,
                level,
                format,
                args,
                line.as_mut_ptr(),
                line.len() as c_int,
                &mut prefix,
            );
            CStr::from_ptr(line.as_ptr()).to_string_lossy()
        };
        let problems = if count == 1 { "problem" } else { "problems" };
        log::warn!(
            "FFmpeg reported {count} {problems} (e.g. {}); counted, and reported at most once a minute",
            example.trim()
        );
    }
}
