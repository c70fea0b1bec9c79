#!/usr/bin/python3
"""A small RTSP server for the receiver's rtsp:// test: serves a moving test picture as H.264
at rtsp://127.0.0.1:PORT/test (Debian: gir1.2-gst-rtsp-server-1.0, python3-gi,
gstreamer1.0-plugins-ugly for x264enc, -good for rtph264pay).

usage: rtsp_server.py PORT [WIDTHxHEIGHT]
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port = sys.argv[1]
width, height = (sys.argv[2] if len(sys.argv) > 2 else "320x240").split("x")
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate=30/1"
    " ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=30"
    " ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
# One pipeline for every client, as a camera serves.
factory.set_shared(True)
server.get_mount_points().add_factory("/test", factory)
if server.attach(None) == 0:
    sys.exit(f"rtsp_server.py: cannot listen on 127.0.0.1:{port}")
print(f"serving rtsp://127.0.0.1:{port}/test", file=sys.stderr, flush=True)
GLib.MainLoop().run()
