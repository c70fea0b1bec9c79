//! A real browser watches the sender's page: headless Chromium (WebDriver, see
//! [`crate::common::webdriver`]) opens `https://127.0.0.1:PORT/#code=CODE` and must show a
//! moving picture, for a JPEG and an H.264 stream, at a desktop's and a phone's size; with a
//! wrong code it shows none and asks for the code. Screenshots go to `target/browser-shots/`.
//! Without Chromium and chromedriver the tests say so and pass, except under CI (`CI` set).

use crate::common::webdriver::{self, Browser, Screen};
use crate::common::{missing_tool, Program, TempDir, TEST_CODE};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One browser at a time: each is several processes, and the machines that run the tests have
/// few cores.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// A browser, or `None` (with a message) when Chromium or its driver is missing outside CI.
fn browser(screen: Screen) -> Option<Browser> {
    if let Err(why) = webdriver::chromedriver() {
        missing_tool(&format!(
            "the browser tests need Chromium and chromedriver: {why} (scripts/setup.sh --test)"
        ));
        return None;
    }
    Some(Browser::start(screen).expect("starting headless Chromium"))
}

/// A test-pattern sender paired with [`TEST_CODE`], the port of its page, and the folder that
/// keeps its certificate (not the user's config folder).
fn sender(codec: &str) -> (Program, u16, TempDir) {
    let config = TempDir::new(&format!("browser-{codec}-config"));
    let (sender, port) = sender_with(codec, &config, &["--listen", "127.0.0.1:0"]);
    (sender, port, config)
}

/// A test-pattern sender keeping its certificate in `config`, with more arguments.
fn sender_with(codec: &str, config: &TempDir, args: &[&str]) -> (Program, u16) {
    let sender = Program::start(
        Command::new(env!("CARGO_BIN_EXE_sender"))
            .args(["--source", "test:640x360", "--no-preview"])
            .args(["--codec", codec, "--code", TEST_CODE])
            .args(args)
            .env("XDG_CONFIG_HOME", &config.0)
            .stdin(Stdio::null()),
    );
    let line = sender.wait_for_line("sender: listening on ");
    let addr = line["sender: listening on ".len()..]
        .split(' ')
        .next()
        .unwrap();
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    (sender, port)
}

fn page_url(port: u16, code: &str) -> String {
    let code = code.replace(' ', "%20");
    format!("https://127.0.0.1:{port}/#code={code}")
}

/// target/browser-shots/NAME.png, beside the test binary's target/debug.
fn shot_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).expect("target/PROFILE/deps/EXE");
    target.join("browser-shots").join(format!("{name}.png"))
}

fn stats(browser: &Browser) -> Value {
    browser
        .execute(
            "return window.camstream ? window.camstream.stats : null",
            json!([]),
        )
        .unwrap()
}

/// Draws whatever shows the stream into a 32x32 canvas twice, 700 ms apart: the two sums of
/// the pixels, and the sum of their differences.
const TWO_LOOKS: &str = "
    const done = arguments[arguments.length - 1];
    const shown = ['video', 'canvas'].map((t) => document.querySelector(t)).find((e) => !e.hidden);
    if (!shown) return done(null);
    const small = document.createElement('canvas');
    small.width = small.height = 32;
    const g = small.getContext('2d');
    const look = () => { g.drawImage(shown, 0, 0, 32, 32); return g.getImageData(0, 0, 32, 32).data; };
    const a = look();
    setTimeout(() => {
        const b = look();
        let sa = 0, sb = 0, diff = 0;
        for (let i = 0; i < a.length; i++) { sa += a[i]; sb += b[i]; diff += Math.abs(a[i] - b[i]); }
        done([sa, sb, diff]);
    }, 700);";

/// Waits up to 20 s for the page to have shown more than `frames` frames in all; its stats.
fn wait_for_shown(browser: &Browser, frames: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut now = stats(browser);
    while now["shown"].as_u64().unwrap_or(0) <= frames && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        now = stats(browser);
    }
    now
}

fn shows_a_moving_picture(codec: &str, screen: Screen) {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = browser(screen) else {
        return;
    };
    let (sender, port, _config) = sender(codec);
    browser.goto(&page_url(port, TEST_CODE)).unwrap();
    let now = wait_for_shown(&browser, 10);
    let looks = browser.execute_async(TWO_LOOKS, json!([])).unwrap();
    browser
        .screenshot(&shot_path(&format!("{codec}-{}", screen.name())))
        .unwrap();
    let why = || {
        format!(
            "page stats {now}, looks {looks}; sender log:\n{}",
            sender.log()
        )
    };

    assert!(
        now["shown"].as_u64().unwrap_or(0) > 10,
        "fewer than 11 frames shown: {}",
        why()
    );
    assert_eq!(now["state"], "playing", "{}", why());
    let expected_mode = if codec == "h264" { "mse" } else { "jpeg" };
    assert_eq!(now["mode"], expected_mode, "{}", why());
    let (a, b) = (&looks[0], &looks[1]);
    assert!(
        a.as_f64().unwrap_or(0.0) > 0.0,
        "the picture is black: {}",
        why()
    );
    assert!(
        a != b && looks[2].as_f64().unwrap_or(0.0) > 0.0,
        "the picture does not move: {}",
        why()
    );
}

#[test]
fn a_jpeg_stream_moves_on_a_desktop() {
    shows_a_moving_picture("jpeg", Screen::Desktop);
}

#[test]
fn a_jpeg_stream_moves_on_a_phone() {
    shows_a_moving_picture("jpeg", Screen::Phone);
}

#[test]
fn an_h264_stream_moves_on_a_desktop_through_mse() {
    shows_a_moving_picture("h264", Screen::Desktop);
}

#[test]
fn an_h264_stream_moves_on_a_phone_through_mse() {
    shows_a_moving_picture("h264", Screen::Phone);
}

#[test]
fn a_wrong_code_shows_no_picture_and_asks_for_the_code() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = browser(Screen::Desktop) else {
        return;
    };
    let (sender, port, _config) = sender("jpeg");
    browser.goto(&page_url(port, "9-wrong-guess")).unwrap();
    std::thread::sleep(Duration::from_secs(3));

    let now = stats(&browser);
    let form = browser
        .execute(
            "const f = document.getElementById('login');
             return f && getComputedStyle(f).display !== 'none' && f.getBoundingClientRect().width > 0",
            json!([]),
        )
        .unwrap();
    browser.screenshot(&shot_path("wrong-code")).unwrap();
    let why = || format!("page stats {now}; sender log:\n{}", sender.log());
    assert_eq!(now["shown"], 0, "a picture was shown: {}", why());
    assert_eq!(now["state"], "login", "{}", why());
    assert_eq!(form, true, "the login form is not visible: {}", why());
    // No "0 fps – ms" behind the form.
    let overlay = browser
        .execute(
            "return getComputedStyle(document.getElementById('overlay')).display",
            json!([]),
        )
        .unwrap();
    assert_eq!(
        overlay,
        "none",
        "the numbers show over the login form: {}",
        why()
    );
}

#[test]
fn the_page_plays_again_by_itself_when_the_sender_restarts() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = browser(Screen::Desktop) else {
        return;
    };
    let config = TempDir::new("browser-restart-config");
    let (first, port) = sender_with("h264", &config, &["--listen", "127.0.0.1:0"]);
    browser.goto(&page_url(port, TEST_CODE)).unwrap();
    let before = wait_for_shown(&browser, 10);
    first.kill();
    // The same port, code and certificate: the page's cookie still holds.
    let listen = format!("127.0.0.1:{port}");
    let (second, _) = sender_with("h264", &config, &["--listen", &listen]);
    let shown = before["shown"].as_u64().unwrap_or(0);
    let after = wait_for_shown(&browser, shown + 10);
    let why = || format!("before {before}, after {after}; log:\n{}", second.log());
    assert!(
        after["shown"].as_u64().unwrap_or(0) > shown + 10,
        "{}",
        why()
    );
    assert_eq!(after["state"], "playing", "{}", why());
}

#[test]
fn a_full_sender_says_so_on_the_page_which_plays_once_a_seat_is_free() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = browser(Screen::Desktop) else {
        return;
    };
    let config = TempDir::new("browser-full-config");
    let args = ["--listen", "127.0.0.1:0", "--max-viewers", "1"];
    let (sender, port) = sender_with("jpeg", &config, &args);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut receiver = crate::common::TestViewer::connect_with(addr, &crate::common::paired());
    assert!(receiver.frame().is_some());
    browser.goto(&page_url(port, TEST_CODE)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let full = stats(&browser);
    let status = browser
        .execute(
            "return document.getElementById('status').textContent",
            json!([]),
        )
        .unwrap();
    browser.screenshot(&shot_path("full")).unwrap();
    let why = || format!("stats {full}, status {status}; log:\n{}", sender.log());
    assert_eq!(full["shown"], 0, "{}", why());
    assert_eq!(full["state"], "full", "{}", why());
    assert!(
        status.as_str().unwrap_or("").contains("1 of 1 viewers"),
        "{}",
        why()
    );
    drop(receiver);
    let now = wait_for_shown(&browser, 5);
    assert!(
        now["shown"].as_u64().unwrap_or(0) > 5,
        "stats {now}; log:\n{}",
        sender.log()
    );
}

#[test]
fn a_frozen_tab_gives_its_seat_back_without_slowing_a_receiver_and_plays_when_it_wakes() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = browser(Screen::Desktop) else {
        return;
    };
    let config = TempDir::new("browser-frozen-config");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--viewer-timeout",
        "2",
        "--fps",
        "30",
    ];
    let (sender, port) = sender_with("jpeg", &config, &args);
    browser.goto(&page_url(port, TEST_CODE)).unwrap();
    let before = wait_for_shown(&browser, 5);
    assert!(before["shown"].as_u64().unwrap_or(0) > 5, "stats {before}");
    // A receiver reading all along, on its own thread: when each frame came.
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut receiver = crate::common::TestViewer::connect_with(addr, &crate::common::paired());
    let arrivals = std::sync::Arc::new(Mutex::new(Vec::new()));
    let arrived = std::sync::Arc::clone(&arrivals);
    std::thread::spawn(move || {
        while let Some(frame) = receiver.frame() {
            arrived.lock().unwrap().push(Instant::now());
            receiver.ack(frame.header.seq);
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    browser.freeze(true);
    let frozen = Instant::now();
    let line = sender.wait_for_line("stalled for");
    let noticed = frozen.elapsed();
    // Given its 2 s, and the second it may take the socket's buffers to fill.
    assert!(noticed < Duration::from_secs(6), "{noticed:?}: {line}");
    assert!(line.contains("browser 127.0.0.1:"), "{line}");
    std::thread::sleep(Duration::from_secs(1));
    let during = frozen.elapsed().as_secs_f64();
    let got = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|&&at| at >= frozen)
        .count();
    assert!(
        got as f64 >= 0.9 * 30.0 * during,
        "the receiver got {got} frames in {during:.1} s while the tab was frozen"
    );
    // Woken, the page finds its socket gone and connects again by itself.
    browser.freeze(false);
    let shown = stats(&browser)["shown"].as_u64().unwrap_or(0);
    let after = wait_for_shown(&browser, shown + 10);
    assert!(
        after["shown"].as_u64().unwrap_or(0) > shown + 10,
        "stats {after}; log:\n{}",
        sender.log()
    );
}
