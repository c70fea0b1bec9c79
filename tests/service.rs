//! The sender as the packaged systemd unit runs it: no terminal, no display, no home, the code
//! in a file, its certificate in the state directory, and READY=1 on `NOTIFY_SOCKET` once it
//! listens. (The package and its unit are checked by `tests/tools/package_check.sh`.)

use crate::common::{self, command, started_sender, Program, SENDER, TEST_SENDER_ARGS};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[test]
fn the_sender_tells_systemd_when_it_listens() {
    let dir = common::TempDir::new("service");
    let code = dir.0.join("code");
    std::fs::write(&code, format!("{}\n", common::TEST_CODE)).unwrap();
    std::fs::set_permissions(&code, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.0.join("state");
    let socket_path = dir.0.join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // The flags of /etc/default/camstream-sender, with the test pattern for the camera.
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--source",
        "test:160x120",
        "--no-preview",
        "--no-qr",
        "--code-file",
        code.to_str().unwrap(),
    ];
    let (sender, addr) = started_sender(Program::start(
        command(SENDER, &args)
            .env_remove("HOME")
            .env("XDG_CONFIG_HOME", &state)
            .env("NOTIFY_SOCKET", &socket_path),
    ));
    let mut buffer = [0u8; 256];
    let got = socket.recv(&mut buffer).unwrap();
    let said = String::from_utf8_lossy(&buffer[..got]);
    assert_eq!(said, format!("READY=1\nSTATUS=listening on {addr}"));
    sender.wait_for_line("certificate SHA-256 fingerprint");
    assert!(state.join("camstream/web-identity.pem").is_file());
    let log = sender.log();
    assert!(!log.contains("warn") && !log.contains("display"), "{log}");
    sender.kill();
    // A socket that is gone is a warning, and the sender serves all the same.
    let (mut sender, _) = started_sender(Program::start(
        command(SENDER, &TEST_SENDER_ARGS).env("NOTIFY_SOCKET", dir.0.join("gone")),
    ));
    sender.wait_for_line("sender: warn: notifying systemd at ");
    assert!(sender.child().try_wait().unwrap().is_none());
    sender.kill();
}
