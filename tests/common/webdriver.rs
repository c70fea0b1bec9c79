//! A headless Chromium for the browser tests, driven over WebDriver: `chromedriver` on a free
//! port in its own process group, and a small blocking client (one HTTP/1.1 request per
//! connection on a `TcpStream`, bodies in `serde_json`), so the tests need no async runtime.

use super::TempDir;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The window the page is shown in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// 1280x800.
    Desktop,
    /// A phone's 390x844 CSS pixels at 3 device pixels each (mobile emulation: touch, a
    /// mobile user agent).
    Phone,
}

impl Screen {
    pub fn size(self) -> (u32, u32) {
        match self {
            Screen::Desktop => (1280, 800),
            Screen::Phone => (390, 844),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Screen::Desktop => "desktop",
            Screen::Phone => "phone",
        }
    }
}

/// `chromedriver` on the PATH or in /usr/bin, when Chromium is there too; else why not.
pub fn chromedriver() -> Result<PathBuf, String> {
    if !Path::new(CHROMIUM).exists() {
        return Err(format!("no {CHROMIUM}"));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("chromedriver"))
        .find(|file| file.is_file())
        .ok_or_else(|| "no chromedriver on the PATH or in /usr/bin".to_owned())
}

/// One browser window with one WebDriver session; dropping it ends both.
pub struct Browser {
    port: u16,
    session: Option<String>,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    pub fn start(screen: Screen) -> Result<Browser> {
        let driver_path = chromedriver().map_err(anyhow::Error::msg)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // Its own process group, so Chromium and its helpers go with it on drop.
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", driver_path.display()))?;
        let profile = TempDir::new(&format!("chromium-{port}"));
        let mut browser = Browser {
            port,
            session: None,
            driver,
            _profile: profile,
        };

        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(browser.request("GET", "/status", None), Ok(v) if v["ready"] == true) {
            if Instant::now() > deadline {
                bail!("chromedriver did not get ready on port {port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }

        let (width, height) = screen.size();
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--autoplay-policy=no-user-gesture-required",
                format!("--user-data-dir={}", browser._profile.0.display()),
                format!("--window-size={width},{height}"),
            ],
        });
        if screen == Screen::Phone {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 3}});
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "acceptInsecureCerts": true, "goog:chromeOptions": options,
        }}});
        let created = browser.request("POST", "/session", Some(&capabilities))?;
        let id = created["sessionId"]
            .as_str()
            .context("no sessionId in the new session")?;
        browser.session = Some(id.to_owned());

        // --window-size counts the window's frame: grow the window until the page has the size.
        if screen == Screen::Desktop {
            let inner = browser.execute("return [innerWidth, innerHeight]", json!([]))?;
            let (w, h) = (
                inner[0].as_i64().unwrap_or(0),
                inner[1].as_i64().unwrap_or(0),
            );
            let (width, height) = (i64::from(width), i64::from(height));
            if (w, h) != (width, height) {
                let rect = json!({"width": 2 * width - w, "height": 2 * height - h});
                browser.session_request("POST", "/window/rect", Some(&rect))?;
            }
        }
        Ok(browser)
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.session_request("POST", "/url", Some(&json!({ "url": url })))?;
        Ok(())
    }

    /// Runs `script` as a function body with `args` as `arguments`; its return value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value> {
        let body = json!({"script": script, "args": args});
        self.session_request("POST", "/execute/sync", Some(&body))
    }

    /// Runs `script` with a callback as its last argument; what it passes to the callback.
    pub fn execute_async(&self, script: &str, args: Value) -> Result<Value> {
        let body = json!({"script": script, "args": args});
        self.session_request("POST", "/execute/async", Some(&body))
    }

    /// Saves the page's viewport as a PNG at `path`, creating its folder.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let shot = self.session_request("GET", "/screenshot", None)?;
        let text = shot.as_str().context("the screenshot is not a string")?;
        let png = data_encoding::BASE64
            .decode(text.as_bytes())
            .context("decoding the screenshot")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    fn session_request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let id = self.session.as_deref().context("no session")?;
        self.request(method, &format!("/session/{id}{path}"), body)
    }

    /// One WebDriver command: its `value`, or its error as an error.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        // chromedriver keeps the connection open: read the head, then the length it gives.
        let mut response = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            match stream.read(&mut chunk)? {
                0 => bail!("{method} {path}: the driver closed the connection"),
                got => response.extend_from_slice(&chunk[..got]),
            }
        };
        let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
        let length = head.lines().find_map(|l| l.strip_prefix("content-length:"));
        let length: usize = length
            .with_context(|| format!("{method} {path}: no Content-Length in {head:?}"))?
            .trim()
            .parse()?;
        let mut content = response.split_off(head_end);
        let have = content.len();
        content.resize(length.max(have), 0);
        stream.read_exact(&mut content[have..])?;
        let answer: Value = serde_json::from_slice(&content)
            .with_context(|| format!("{method} {path}: {}", String::from_utf8_lossy(&content)))?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if !head.starts_with("http/1.1 2") {
            bail!("{method} {path}: {}: {}", value["error"], value["message"]);
        }
        Ok(value)
    }
}

impl Browser {
    /// Stops the driver, Chromium and its helpers (`true`), or lets them go on: a laptop that
    /// went to sleep, then woke.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: a signal to the process group chromedriver leads (see `start`).
        unsafe { libc::kill(-(self.driver.id() as i32), signal) };
    }
}

/// A failing test must leave no browser behind.
impl Drop for Browser {
    fn drop(&mut self) {
        // A frozen browser would never answer the request below.
        self.freeze(false);
        if self.session.is_some() {
            let _ = self.session_request("DELETE", "", None);
        }
        // SAFETY: a signal to the process group chromedriver leads (see `start`).
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}
