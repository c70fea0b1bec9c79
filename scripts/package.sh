#!/usr/bin/env bash
# Builds the Debian package of this machine's architecture from a release build:
# target/debian/camstream_VERSION_ARCH.deb, whose path is the one line printed on stdout. It
# installs the programs as /usr/bin/camstream-sender and /usr/bin/camstream-receiver, and the
# sender's systemd unit, camstream-sender.service, with its flags in /etc/default/camstream-sender
# (a conffile); packaging/ holds those files and the maintainer scripts. The runtime libraries it
# depends on are found by dpkg-shlibdeps (dpkg-dev), from the libraries the programs link.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

cargo build --release --bins >&2

id=$(cargo pkgid)
version=${id##*[#@]}
arch=$(dpkg --print-architecture)
out=target/debian
# dpkg-shlibdeps wants the tree at debian/PACKAGE beside a debian/control.
work=$out/build
root=$work/debian/camstream
rm -rf "$work"
mkdir -p "$root/DEBIAN"

install -D -m 0755 target/release/sender "$root/usr/bin/camstream-sender"
install -D -m 0755 target/release/receiver "$root/usr/bin/camstream-receiver"
# The release profile keeps line tables for backtraces and profiles; installed, they are 80% of
# the bytes.
strip --strip-unneeded "$root/usr/bin/camstream-sender" "$root/usr/bin/camstream-receiver"
install -D -m 0644 packaging/camstream-sender.service "$root/lib/systemd/system/camstream-sender.service"
install -D -m 0644 packaging/camstream-sender.default "$root/etc/default/camstream-sender"
install -D -m 0644 packaging/copyright "$root/usr/share/doc/camstream/copyright"
install -D -m 0644 README.md "$root/usr/share/doc/camstream/README.md"
install -m 0755 packaging/postinst packaging/prerm packaging/postrm "$root/DEBIAN/"
echo /etc/default/camstream-sender >"$root/DEBIAN/conffiles"

printf 'Source: camstream\n\nPackage: camstream\nArchitecture: any\n' >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O debian/camstream/usr/bin/camstream-sender debian/camstream/usr/bin/camstream-receiver)
cat >"$root/DEBIAN/control" <<CONTROL
Package: camstream
Version: $version
Architecture: $arch
Maintainer: camstream maintainers <maintainers@users.noreply.r-seed-fb011755.example>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: ${shlibs#shlibs:Depends=}, passwd
Suggests: gstreamer1.0-plugins-base, gstreamer1.0-libcamera
Section: video
Priority: optional
Description: live video from a camera to screens elsewhere, paired and encrypted
 camstream-sender serves a camera (V4L2 or a GStreamer pipeline, such as a Raspberry Pi
 camera's), a video file or a test pattern to camstream-receiver windows and to browsers,
 as JPEG, H.264 or raw frames, after pairing on a code. The package runs the sender as a
 systemd service, camstream-sender.service, whose flags are in /etc/default/camstream-sender.
CONTROL

deb="$out/camstream_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >&2
echo "$deb"
