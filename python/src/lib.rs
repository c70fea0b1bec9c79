//! `import camstream`: the Rust crate's [`camstream::Receiver`], [`camstream::Hub`] and
//! [`camstream::Sender`] for Python, with frames as numpy arrays (height × width × 3, `uint8`, BGR: what OpenCV's Python
//! bindings use). Every wait releases the GIL and looks for Ctrl-C every [`SIGNAL_CHECK`].

use camstream::lock;
use numpy::{PyArray1, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::exceptions::{PyConnectionError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PySlice};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a wait runs without the GIL before it looks for Ctrl-C (and other signals).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// One frame, owned by the caller.
#[pyclass(frozen, module = "camstream")]
struct Frame {
    /// The picture: a numpy `uint8` array, height × width × 3, BGR.
    #[pyo3(get)]
    image: Py<PyAny>,
    /// The sender's sequence number (a gap is frames not sent to us, or not shown).
    #[pyo3(get)]
    seq: u64,
    /// When the sender captured it, in seconds since the Unix epoch on this machine's clock.
    #[pyo3(get)]
    capture_time: f64,
    /// From capture until it was handed over, in milliseconds.
    #[pyo3(get)]
    latency_ms: f64,
    #[pyo3(get)]
    width: u32,
    #[pyo3(get)]
    height: u32,
    /// `"jpeg"`, `"h264"` or `"raw"`.
    #[pyo3(get)]
    codec: String,
    /// The frame as it was encoded, unless raw: made into `bytes` only when asked for.
    compressed: Vec<u8>,
}

#[pymethods]
impl Frame {
    /// The frame as it was encoded, for a program that stores or forwards it (for a raw stream,
    /// the image's bytes).
    #[getter]
    fn encoded<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        match self.codec.as_str() {
            "raw" => self
                .image
                .bind(py)
                .call_method0("tobytes")?
                .cast_into::<PyBytes>()
                .map_err(Into::into),
            _ => Ok(PyBytes::new(py, &self.compressed)),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<camstream.Frame seq={} {}x{} {} latency_ms={:.1}>",
            self.seq, self.width, self.height, self.codec, self.latency_ms
        )
    }
}

impl Frame {
    fn new(py: Python<'_>, frame: camstream::Frame) -> PyResult<Frame> {
        let compressed = match frame.codec {
            camstream::Codec::Raw => Vec::new(),
            _ => frame.encoded().to_vec(),
        };
        let shape = (frame.height as usize, frame.width as usize, 3);
        // The pixels move into numpy in the buffer they are in (a raw frame's, the one it
        // arrived in), the array a view of their part of it: no copy.
        let (buffer, at) = frame.bgr.into_parts();
        let part = PySlice::new(py, at.start as isize, at.end as isize, 1);
        let image = (PyArray1::from_vec(py, buffer).into_any())
            .get_item(part)?
            .call_method1("reshape", (shape,))?;
        Ok(Frame {
            image: image.unbind(),
            seq: frame.seq,
            capture_time: unix_seconds(frame.capture_time),
            latency_ms: frame.latency.as_secs_f64() * 1e3,
            width: frame.width,
            height: frame.height,
            codec: frame.codec.to_string(),
            compressed,
        })
    }
}

/// The pairing `code` or `insecure`, not both; `None` when neither was given.
fn pairing(code: Option<String>, insecure: bool) -> PyResult<Option<camstream::PairingMode>> {
    match (code, insecure) {
        (Some(_), true) => Err(PyValueError::new_err(
            "give code or insecure=True, not both",
        )),
        (Some(code), false) => {
            let code = camstream::config::parse_code(&code).map_err(PyValueError::new_err)?;
            Ok(Some(camstream::PairingMode::Code(code)))
        }
        (None, true) => Ok(Some(camstream::PairingMode::Insecure)),
        (None, false) => Ok(None),
    }
}

/// Connects to the sender at `address` with its `code` (or `insecure`), without the GIL.
fn connect(
    py: Python<'_>,
    address: &str,
    code: Option<String>,
    insecure: bool,
    reconnect: bool,
) -> PyResult<camstream::Receiver> {
    let pairing = pairing(code, insecure)?.ok_or_else(|| {
        PyValueError::new_err("give the sender's pairing code (code=...) or insecure=True")
    })?;
    let options = camstream::ReceiverOptions {
        reconnect,
        ..Default::default()
    };
    py.detach(|| camstream::Receiver::connect_with(address, pairing, options))
        .map_err(connection_error)
}

/// A `timeout` in seconds, `None` for none: a `ValueError` when it is negative or not a number.
fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        .map(|seconds| {
            Duration::try_from_secs_f64(seconds).map_err(|_| {
                PyValueError::new_err(format!(
                    "timeout must be a number of seconds, 0 or more, not {seconds}"
                ))
            })
        })
        .transpose()
}

/// An error from the crate, as one line.
fn connection_error(error: anyhow::Error) -> PyErr {
    PyConnectionError::new_err(camstream::error_line(&error))
}

/// A connection to a camstream sender: its newest frames, as numpy arrays.
#[pyclass(module = "camstream")]
struct Receiver {
    inner: Mutex<Option<camstream::Receiver>>,
}

#[pymethods]
impl Receiver {
    /// Connects to the sender at `address` ("HOST:PORT") with its pairing code (or to an
    /// `--insecure` sender with `insecure=True`). A lost sender is waited for and followed,
    /// unless `reconnect=False`.
    #[new]
    #[pyo3(signature = (address, code=None, insecure=false, reconnect=true))]
    fn new(
        py: Python<'_>,
        address: String,
        code: Option<String>,
        insecure: bool,
        reconnect: bool,
    ) -> PyResult<Receiver> {
        let receiver = connect(py, &address, code, insecure, reconnect)?;
        Ok(Receiver {
            inner: Mutex::new(Some(receiver)),
        })
    }

    /// The next frame. Waits at most `timeout` seconds (forever when `None`), then raises
    /// `TimeoutError`. Raises `EOFError` once the stream has ended (with `reconnect=False`).
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Frame> {
        match self.next_within(py, timeout)? {
            Some(frame) => Ok(frame),
            None => Err(pyo3::exceptions::PyEOFError::new_err(
                "the stream has ended",
            )),
        }
    }

    /// Counts so far, across reconnections: the `receiver` program's `--stats`, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let guard = lock(&self.inner);
        let receiver = guard.as_ref().ok_or_else(closed)?;
        let text = serde_json_text(&receiver.stats())?;
        py.import("json")?.call_method1("loads", (text,))
    }

    /// Disconnects.
    fn close(&self) {
        lock(&self.inner).take();
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Frame>> {
        self.next_within(py, None)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close();
    }
}

impl Receiver {
    /// The next frame within `timeout` (`TimeoutError` after it), or `None` at the stream's end.
    fn next_within(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Frame>> {
        let next = wait(py, timeout, |wait| match lock(&self.inner).as_mut() {
            Some(receiver) => Ok(receiver.next_timeout(wait)),
            None => Err(closed()),
        })?;
        next.map(|frame| Frame::new(py, frame)).transpose()
    }
}

/// What a wait came to.
enum Waited<T> {
    Found(T),
    /// The stream has ended.
    Ended,
    TimedOut,
}

/// Calls `next` (without the GIL) with waits of at most [`SIGNAL_CHECK`], looking for Ctrl-C
/// between them, until it gives something or says the stream ended, up to `timeout` seconds
/// (forever when `None`).
fn wait_for<T: Send>(
    py: Python<'_>,
    timeout: Option<f64>,
    mut next: impl FnMut(Duration) -> PyResult<Option<anyhow::Result<Option<T>>>> + Send,
) -> PyResult<Waited<T>> {
    let deadline = seconds(timeout)?.map(|limit| Instant::now() + limit);
    loop {
        let wait = match deadline {
            Some(deadline) => SIGNAL_CHECK.min(deadline.saturating_duration_since(Instant::now())),
            None => SIGNAL_CHECK,
        };
        match py.detach(|| next(wait))? {
            None => return Ok(Waited::Ended),
            Some(Ok(Some(found))) => return Ok(Waited::Found(found)),
            Some(Ok(None)) => {}
            Some(Err(e)) => return Err(connection_error(e)),
        }
        py.check_signals()?;
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(Waited::TimedOut);
        }
    }
}

/// [`wait_for`] a frame: `None` at the stream's end, `TimeoutError` after `timeout` seconds.
fn wait<T: Send>(
    py: Python<'_>,
    timeout: Option<f64>,
    next: impl FnMut(Duration) -> PyResult<Option<anyhow::Result<Option<T>>>> + Send,
) -> PyResult<Option<T>> {
    match wait_for(py, timeout, next)? {
        Waited::Found(found) => Ok(Some(found)),
        Waited::Ended => Ok(None),
        Waited::TimedOut => Err(PyTimeoutError::new_err(format!(
            "no frame came within {} s",
            timeout.unwrap_or_default()
        ))),
    }
}

/// Several senders' newest frames in one place, as imagezmq's `ImageHub`: `(sender, frame)`,
/// where `sender` is the address it was added with.
#[pyclass(module = "camstream")]
struct Hub {
    inner: Mutex<Option<camstream::Hub>>,
    /// The senders' addresses, in the order they were added.
    names: Mutex<Vec<String>>,
}

#[pymethods]
impl Hub {
    #[new]
    fn new() -> Hub {
        Hub {
            inner: Mutex::new(Some(camstream::Hub::new())),
            names: Mutex::new(Vec::new()),
        }
    }

    /// Connects to one more sender, as `Receiver(...)` does; each is followed on its own.
    #[pyo3(signature = (address, code=None, insecure=false, reconnect=true))]
    fn add(
        &self,
        py: Python<'_>,
        address: String,
        code: Option<String>,
        insecure: bool,
        reconnect: bool,
    ) -> PyResult<()> {
        let receiver = connect(py, &address, code, insecure, reconnect)?;
        lock(&self.inner)
            .as_mut()
            .ok_or_else(closed)?
            .add_receiver(receiver);
        lock(&self.names).push(address);
        Ok(())
    }

    /// The next `(sender, frame)`, the senders taken in turn. Waits at most `timeout` seconds
    /// (forever when `None`), then raises `TimeoutError`; raises `EOFError` once every
    /// sender's stream has ended, and `ConnectionError` naming a sender whose stream broke.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(String, Frame)> {
        self.next_within(py, timeout)?
            .ok_or_else(|| pyo3::exceptions::PyEOFError::new_err("every stream has ended"))
    }

    /// Each sender as last seen, in the order added: its address, frames taken and skipped
    /// (replaced by a newer one before they were taken), whether it is away (`lost`: since
    /// when, in seconds since 1970, and why; `None` while connected) or `ended`, and its
    /// receiver's counts, as dicts.
    fn senders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let senders = lock(&self.inner).as_ref().ok_or_else(closed)?.senders();
        let dicts = py
            .import("json")?
            .call_method1("loads", (serde_json_text(&senders)?,))?;
        for (dict, sender) in dicts.try_iter()?.zip(&senders) {
            let dict = dict?;
            dict.set_item("ended", sender.ended)?;
            let lost = (sender.lost.as_ref()).map(|(since, why)| (unix_seconds(*since), why));
            dict.set_item("lost", lost)?;
        }
        Ok(dicts)
    }

    /// Disconnects from every sender.
    fn close(&self, py: Python<'_>) {
        let hub = lock(&self.inner).take();
        py.detach(|| drop(hub));
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<(String, Frame)>> {
        self.next_within(py, None)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close(py);
    }
}

impl Hub {
    fn next_within(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Option<(String, Frame)>> {
        let next = wait(py, timeout, |wait| match lock(&self.inner).as_mut() {
            Some(hub) => Ok(hub.next_timeout(wait)),
            None => Err(closed()),
        })?;
        let Some((index, frame)) = next else {
            return Ok(None);
        };
        let name = lock(&self.names).get(index).cloned().unwrap_or_default();
        Ok(Some((name, Frame::new(py, frame)?)))
    }
}

fn closed() -> PyErr {
    PyRuntimeError::new_err("it is closed")
}

/// A time as Python's `time.time()` gives it.
fn unix_seconds(time: SystemTime) -> f64 {
    (time.duration_since(UNIX_EPOCH).unwrap_or_default()).as_secs_f64()
}

fn serde_json_text(report: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(report).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Serves the frames a program makes to receivers, browsers and `/stream.mjpg`, as the `sender`
/// program serves a camera.
#[pyclass(module = "camstream")]
struct Sender {
    inner: Mutex<Option<camstream::Sender>>,
    /// The pairing code viewers must give; `None` when insecure.
    #[pyo3(get)]
    code: Option<String>,
    /// The port it listens on (useful with port 0, which picks a free one).
    #[pyo3(get)]
    port: u16,
}

#[pymethods]
impl Sender {
    /// Listens on `listen` ("IP:PORT"). Without `code` a new one is made (`.code`);
    /// `insecure=True` serves anyone who can reach the port, in the clear. `publish`: media
    /// servers (`rtmp://`, `rtsp://`, `srt://` URLs) to publish H.264 to as well.
    #[new]
    #[pyo3(signature = (listen, code=None, insecure=false, codec="jpeg", quality=80, fps=None, max_viewers=8, publish=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        listen: String,
        code: Option<String>,
        insecure: bool,
        codec: &str,
        quality: u8,
        fps: Option<f64>,
        max_viewers: usize,
        publish: Option<Vec<String>>,
    ) -> PyResult<Sender> {
        let publish = publish.unwrap_or_default();
        for url in &publish {
            (url.parse::<camstream::config::PublishTarget>()).map_err(PyValueError::new_err)?;
        }
        let options = camstream::SenderOptions {
            codec: camstream::config::parse_codec(codec).map_err(PyValueError::new_err)?,
            quality: camstream::config::parse_quality(&quality.to_string())
                .map_err(PyValueError::new_err)?,
            pairing: pairing(code, insecure)?,
            fps,
            max_viewers,
            publish,
            ..Default::default()
        };
        let sender = camstream::Sender::bind(&listen, options).map_err(connection_error)?;
        Ok(Sender {
            code: sender.code().map(str::to_owned),
            port: sender.local_addr().port(),
            inner: Mutex::new(Some(sender)),
        })
    }

    /// Leaves `image` (a numpy `uint8` array, height × width × 3, BGR) as the newest frame and
    /// returns at once. Every frame must have the first one's size.
    fn send(&self, py: Python<'_>, image: &Bound<'_, PyAny>) -> PyResult<()> {
        let image: PyReadonlyArray3<'_, u8> = image.extract().map_err(|_| {
            PyValueError::new_err(format!(
                "image must be a numpy uint8 array, height x width x 3 (BGR), not {}",
                describe(image)
            ))
        })?;
        let [height, width, channels] = *image.shape() else {
            return Err(PyValueError::new_err("image must have three dimensions"));
        };
        if channels != 3 {
            return Err(PyValueError::new_err(format!(
                "image must be height x width x 3 (BGR), not {height} x {width} x {channels}"
            )));
        }
        let (width, height) = (u32::try_from(width), u32::try_from(height));
        let (Ok(width), Ok(height)) = (width, height) else {
            return Err(PyValueError::new_err("image is too large"));
        };
        let mut guard = lock(&self.inner);
        let sender = guard.as_mut().ok_or_else(closed)?;
        let pixels = image.as_array();
        let pixels = pixels.as_standard_layout();
        let bytes = pixels.as_slice().unwrap_or_default();
        (sender.check_frame(bytes.len(), width, height))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        py.detach(|| sender.send(bytes, width, height))
            .map_err(connection_error)
    }

    /// Waits until a viewer is ready for a frame newer than the last one sent, for a program
    /// that makes frames as fast as it can and wants to make only those that will be sent.
    /// True when one is (at once before the first frame, or with `fps`); False after `timeout`
    /// seconds (forever when `None`). Releases the GIL; Ctrl-C interrupts it.
    #[pyo3(signature = (timeout=None))]
    fn wait_wanted(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let waited = wait_for(py, timeout, |step| match lock(&self.inner).as_ref() {
            Some(sender) => Ok(Some(Ok(sender.wait_wanted(step).then_some(())))),
            None => Err(closed()),
        })?;
        Ok(matches!(waited, Waited::Found(())))
    }

    /// Stops serving.
    fn close(&self) -> PyResult<()> {
        match lock(&self.inner).take() {
            Some(sender) => sender.close().map(drop).map_err(connection_error),
            None => Ok(()),
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.close()
    }
}

/// What a value that is not a BGR image is, for the error.
fn describe(value: &Bound<'_, PyAny>) -> String {
    let shape = value.getattr("shape").map(|shape| shape.to_string());
    let dtype = value.getattr("dtype").map(|dtype| dtype.to_string());
    match (shape, dtype) {
        (Ok(shape), Ok(dtype)) => format!("an array of {dtype} with shape {shape}"),
        _ => value
            .get_type()
            .name()
            .map_or_else(|_| "that".to_owned(), |name| format!("a {name}")),
    }
}

#[pymodule]
#[pyo3(name = "camstream")]
fn camstream_py(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The crate's warnings (a sender lost and waited for, a damaged frame) on stderr, as the
    // programs print them; RUST_LOG=info says more. Not through Python's `logging`: that
    // needs the GIL, which a thread dropping a Sender may hold while it waits for ours.
    camstream::cli::init_logging_at("camstream", log::LevelFilter::Warn);
    m.add_class::<Receiver>()?;
    m.add_class::<Hub>()?;
    m.add_class::<Sender>()?;
    m.add_class::<Frame>()?;
    Ok(())
}
