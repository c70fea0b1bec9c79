//! The integration tests, one binary (as ripgrep does): each test binary links the crate and
//! OpenCV, so one binary is built and linked once instead of eight times. Cargo.toml sets
//! `autotests = false`, so a new file in tests/ is built only once it is declared here.

mod api;
mod common;

mod bad_peers;
mod browser;
mod cameras;
mod cli;
mod grid;
mod gui;
mod h264;
mod internet;
mod live;
mod loopback;
mod protocol_props;
mod publish;
mod secure;
mod service;
mod survive;
mod urls;
mod web;
