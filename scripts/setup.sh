#!/usr/bin/env bash
# Installs what camstream needs on Debian 12 and is missing: OpenCV, FFmpeg's libraries (H.264
# through libavcodec's libx264 and h264 decoder, swscale) and libclang to build, gcc for AWS-LC
# (the crypto library), dpkg-dev for scripts/package.sh (dpkg-shlibdeps). With --test also:
# Xvfb, xdotool, ImageMagick and faketime for the window and clock tests; curl, ffmpeg, Chromium
# and its WebDriver for the web tests; nginx with its RTMP module, and GStreamer's RTSP server
# (python3-gi) for the publishing and URL tests; systemd for systemd-analyze, which checks the
# package's unit; python3-venv for the Python module's tests (scripts/python.sh). With --bench also: iperf3, iproute2 (network namespaces, tc), python3-venv for
# the benchmark's references, ffmpeg (the CLI reference for H.264), opencv-doc (vtest.avi, the
# real footage H.264 is measured on), Chromium, its WebDriver and python3-selenium for the
# browser rows, and nginx-rtmp and curl for the publishing rows. Runs apt-get as root, or through
# sudo when not root.
set -euo pipefail

packages=(libopencv-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev clang libclang-dev pkg-config gcc dpkg-dev)
for flag in "$@"; do
  case "$flag" in
    --test) packages+=(xvfb xauth xdotool imagemagick faketime curl ffmpeg chromium chromium-driver nginx libnginx-mod-rtmp python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly systemd python3-venv) ;;
    --bench) packages+=(iperf3 iproute2 python3-venv ffmpeg opencv-doc python3-selenium chromium chromium-driver nginx libnginx-mod-rtmp curl xvfb xauth) ;;
    *) echo "setup: unknown option $flag (use --test and/or --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
  fi
  echo "setup: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust from https://rustup.rs, then run this again" >&2
  exit 1
fi
