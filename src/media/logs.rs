//! The libraries' own log lines. FFmpeg prints a line for every damaged frame (`[mjpeg @ …]`),
//! from our calls and from OpenCV's, which would bury our one-line messages: its lines are
//! counted instead, and reported through our log at most once a minute with one example, and
//! what is left at exit ([`report_library_problems`]). OpenCV's own warnings are turned down to
//! errors. [`Tally`] is that once-a-minute count, for our own repeated lines too.

use ffmpeg_next::ffi;
use opencv::core;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// A repeated problem is reported at most this often.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Like events counted and reported at most once per [`REPORT_INTERVAL`]: the first at once,
/// each later report with the count since the last, so a flood of them is a line a minute.
/// Safe to share between threads.
#[derive(Default)]
pub struct Tally {
    unreported: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

impl Tally {
    pub const fn new() -> Tally {
        Tally {
            unreported: AtomicU64::new(0),
            last_report: Mutex::new(None),
        }
    }

    /// Counts `n` more; returns how many to report now, when a report is due.
    pub fn count(&self, n: u64) -> Option<u64> {
        self.unreported.fetch_add(n, Ordering::Relaxed);
        // Another thread is reporting: these are in its report or the next.
        let mut last = self.last_report.try_lock().ok()?;
        if last.is_some_and(|at| at.elapsed() < REPORT_INTERVAL) {
            return None;
        }
        *last = Some(Instant::now());
        Some(self.unreported.swap(0, Ordering::Relaxed))
    }

    /// What was counted since the last report, taken: for a last line.
    pub fn rest(&self) -> u64 {
        self.unreported.swap(0, Ordering::Relaxed)
    }
}

/// Reports the problems FFmpeg had after the last report: for a program's last lines.
pub fn report_library_problems() {
    #[cfg(target_arch = "x86_64")]
    match counting::FFMPEG_PROBLEMS.rest() {
        0 => {}
        count => log::warn!("FFmpeg reported {count} more {}", problems(count)),
    }
}

fn problems(count: u64) -> &'static str {
    if count == 1 {
        "problem"
    } else {
        "problems"
    }
}

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
    use super::Tally;
    use ffmpeg_next::ffi;
    use std::ffi::CStr;
    use std::os::raw::{c_char, c_int, c_void};

    /// FFmpeg's problems: its lines of an error or worse.
    pub(super) static FFMPEG_PROBLEMS: Tally = Tally::new();

    /// Counts one of FFmpeg's lines if it is a problem, and reports the count when a report is
    /// due ([`Tally`]). FFmpeg calls it from any of its threads.
    pub(super) unsafe extern "C" fn on_ffmpeg_line(
        context: *mut c_void,
        level: c_int,
        format: *const c_char,
        args: *mut ffi::__va_list_tag,
    ) {
        if level > ffi::AV_LOG_ERROR {
            return;
        }
        let Some(count) = FFMPEG_PROBLEMS.count(1) else {
            return;
        };
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
        log::warn!(
            "FFmpeg reported {count} {} (e.g. {}); counted, and reported at most once a minute",
            super::problems(count),
            example.trim()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn a_tally_reports_the_first_at_once_then_the_rest_when_asked() {
        let tally = Tally::new();
        assert_eq!(tally.count(3), Some(3));
        // Within the minute: counted, not reported.
        assert_eq!(tally.count(2), None);
        assert_eq!(tally.count(1), None);
        assert_eq!(tally.rest(), 3);
        assert_eq!(tally.rest(), 0);
    }
}
