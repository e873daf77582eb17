"""Camera images into the real perception node over DDS, as on a robot: how many arrive.

A publisher process sends images at a camera's rate (each setting: size x encoding x rate, for
``--seconds``) into ``perception_node`` running as its own process (the installed executable's
module, ``autostart:=true``). Per setting it reports frames published, received by the node (its
/diagnostics counters), processed and published on ``emotions`` (counted here by stamp), and the
node's own estimate of the frames lost before it (stamp gaps). The DDS implementation and its
configuration are named in the output; ``--dds-config`` gives a Fast DDS XML profile to every
process (camera, node, this one), or with ``--dds-config-on node|camera`` to that one only (which
side needs it). Prints one JSON object.

    PYTHONPATH=ros2_ws/src/emotion_perception .venv/bin/python benchmarks/camera_path.py \\
        --publisher-qos best_effort --node-qos best_effort            # the node's QoS before issue 24
    PYTHONPATH=... .venv/bin/python benchmarks/camera_path.py --publisher-qos best_effort \\
        --dds-config ros2_ws/src/emotion_perception/config/fastdds_large_images.xml

The node runs the lite profile on the CPU by default: with 2 cores it processes far fewer frames
than arrive (it keeps only the newest), so "processed" measures the machine, "received" the link.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT.parent / "shared" / "data" / "images" / "single_face.jpg"
TOPIC = "/camera_path/image"
SETTLE_S = 3.0  # after the publisher matched the node: discovery, image_qos auto's re-check (1 s)


def ros_environment(args) -> dict:
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(120, 200)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    return env


def with_dds_config(args, env: dict, process: str) -> dict:
    """``env`` for ``process`` (camera, node or observer) with the XML profile where it applies."""
    if args.dds_config and args.dds_config_on in ("all", process):
        return {**env, "FASTRTPS_DEFAULT_PROFILES_FILE": str(Path(args.dds_config).resolve())}
    return env


# ----------------------------------------------------------------------------- the camera process
def publish(args) -> None:
    """``publish`` subcommand: one camera. Waits for the node's subscription, then sends
    ``rate * seconds`` frames stamped ``start + i / rate`` (exactly, so the node's stamp-gap
    estimate can be checked), and prints what it sent as JSON."""
    import cv2
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
    from sensor_msgs.msg import CompressedImage, Image

    width, height = (int(x) for x in args.size.split("x"))
    bgr = cv2.imread(str(IMAGE)) if IMAGE.exists() else None
    if bgr is None:  # no shared data: a gradient, which gives the node no face but the same bytes
        bgr = np.tile(np.linspace(0, 255, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    bgr = cv2.resize(bgr, (width, height))
    rclpy.init()
    node = rclpy.create_node("camera_path_camera")
    reliability = ReliabilityPolicy.RELIABLE if args.qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    qos = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
    if args.encoding == "jpeg":
        pub = node.create_publisher(CompressedImage, f"{TOPIC}/compressed", qos)
        msg = CompressedImage(format="rgb8; jpeg compressed bgr8",
                              data=cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    else:
        pub = node.create_publisher(Image, TOPIC, qos)
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=rgb.tobytes())
    msg.header.frame_id = "camera"
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(SETTLE_S)
    subscriber = [str(i.qos_profile.reliability.name).lower() for i in node.get_subscriptions_info_by_topic(pub.topic_name)]
    period = 1.0 / args.rate
    count = int(round(args.rate * args.seconds))
    stamp0 = node.get_clock().now().nanoseconds
    t0 = time.monotonic()
    late = 0
    for i in range(count):
        wait = t0 + i * period - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        elif wait < -period:
            late += 1
        stamp = stamp0 + round(i * period * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        pub.publish(msg)
    sent_s = time.monotonic() - t0
    time.sleep(1.0)  # reliable: let the last frames be acknowledged
    print(json.dumps({"published": count, "first_stamp_ns": stamp0, "period_ns": round(period * 1e9),
                      "publish_wall_s": round(sent_s, 3), "published_over_a_period_late": late,
                      "subscriber_reliability": subscriber, "bytes": len(msg.data)}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


# ----------------------------------------------------------------------------- the orchestrator
class Observer:
    """Counts ``emotions`` by stamp and keeps the node's latest per-camera diagnostics."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from emotion_msgs.msg import EmotionStateArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        rclpy.init()
        self.node = rclpy.create_node("camera_path_observer")
        self.stamps: list[int] = []
        self.camera: dict[str, str] = {}
        self.node_status = ""
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(EmotionStateArray, "/camera_path/emotions", self._on_emotions, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def _on_emotions(self, msg) -> None:
        self.stamps.append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if "camera_path" not in status.name:
                continue
            if ": camera " in status.name:
                self.camera = {kv.key: kv.value for kv in status.values}
                self.camera["message"] = status.message
            else:
                self.node_status = status.message

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def spin_until(self, condition, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise SystemExit(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)


def start_node(args, encoding: str, env: dict) -> subprocess.Popen:
    node_env = with_dds_config(args, env, "node")
    cmd = [sys.executable, "-c", "from emotion_perception.ros.executables import perception_node; perception_node()",
           "--ros-args", "-r", "__ns:=/camera_path", "-r", f"image:={TOPIC}",
           "-p", "autostart:=true", "-p", f"profile:={args.profile}", "-p", f"device:={args.device}",
           "-p", f"image_transport:={'compressed' if encoding == 'jpeg' else 'raw'}",
           "-p", f"image_qos:={args.node_qos}", "-p", "publish_debug_image:=false"]
    return subprocess.Popen(cmd, env=node_env, stdout=subprocess.DEVNULL if not args.verbose else None,
                            stderr=subprocess.STDOUT if not args.verbose else None, start_new_session=True)


def counters(camera: dict) -> dict:
    def num(key):
        try:
            return int(camera.get(key, "0"))
        except ValueError:
            return 0
    return {"received": num("frames received"), "processed": num("frames published"),
            "dropped": num("frames dropped"), "lost_estimate": num("frames lost before the node (est.)")}


def run_setting(args, observer: Observer, encoding: str, size: str, rate: float, env: dict) -> dict:
    before = counters(observer.camera)
    observer.stamps.clear()
    cmd = [sys.executable, __file__, "publish", "--size", size, "--rate", str(rate), "--encoding", encoding,
           "--seconds", str(args.seconds), "--qos", args.publisher_qos]
    camera_env = with_dds_config(args, env, "camera")
    load = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, env=camera_env, stdout=subprocess.PIPE, text=True)
    observer.spin_until(lambda: proc.poll() is not None, args.seconds + 60, "the camera process")
    out = proc.stdout.read().strip().splitlines()
    if proc.returncode != 0 or not out:
        raise SystemExit(f"the camera process failed ({proc.returncode})")
    sent = json.loads(out[-1])
    observer.spin_for(2.0)  # the node's last results and a diagnostics message after the last frame
    after = counters(observer.camera)
    period = sent["period_ns"]  # stamps are rounded per frame: a result is frame round(offset / period)
    emitted = len({round((s - sent["first_stamp_ns"]) / period) for s in observer.stamps} & set(range(sent["published"])))
    received = after["received"] - before["received"]
    return {
        "encoding": encoding, "size": size, "rate_hz": rate, "bytes_per_image": sent["bytes"],
        "published": sent["published"], "received_by_node": received,
        "received_ratio": round(received / sent["published"], 4),
        "processed": after["processed"] - before["processed"],
        "published_on_emotions": emitted,
        "node_estimate_lost_before_node": after["lost_estimate"] - before["lost_estimate"],
        "node_subscription": sent["subscriber_reliability"],
        "camera_late_frames": sent["published_over_a_period_late"],
        "camera_diagnostics_message": observer.camera.get("message", ""),
        "loadavg_1min_at_start": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    pub = sub.add_parser("publish", help="(internal) the camera process")
    pub.add_argument("--size", required=True)
    pub.add_argument("--rate", type=float, required=True)
    pub.add_argument("--encoding", choices=("rgb8", "jpeg"), required=True)
    pub.add_argument("--seconds", type=float, required=True)
    pub.add_argument("--qos", choices=("reliable", "best_effort"), required=True)
    parser.add_argument("--seconds", type=float, default=10.0, help="per setting")
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--rates", default="15,30")
    parser.add_argument("--encodings", default="rgb8,jpeg")
    parser.add_argument("--publisher-qos", choices=("reliable", "best_effort"), default="reliable")
    parser.add_argument("--node-qos", choices=("auto", "reliable", "best_effort"), default="auto",
                        help="the node's image_qos (best_effort = its only setting before issue 24)")
    parser.add_argument("--dds-config", help="Fast DDS XML profile (FASTRTPS_DEFAULT_PROFILES_FILE)")
    parser.add_argument("--dds-config-on", choices=("all", "node", "camera"), default="all",
                        help="which processes get --dds-config")
    parser.add_argument("--profile", default="lite-fer2013")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--verbose", action="store_true", help="show the node's log")
    args = parser.parse_args()
    if args.command == "publish":
        return publish(args)

    env = ros_environment(args)
    os.environ.clear()
    os.environ.update(with_dds_config(args, env, "observer"))  # this process too: before rclpy.init
    from rclpy.utilities import get_rmw_implementation_identifier

    observer = Observer()
    results = []
    started = time.monotonic()
    try:
        for encoding in args.encodings.split(","):
            observer.spin_for(1.0)  # drain the previous node's last diagnostics before forgetting them
            observer.camera = {}
            node = start_node(args, encoding, env)
            try:
                observer.spin_until(lambda: observer.camera and "inactive" not in observer.camera.get("message", ""),
                                    180, "the perception node to become active")
                for size in args.sizes.split(","):
                    for rate in (float(r) for r in args.rates.split(",")):
                        results.append(run_setting(args, observer, encoding, size, rate, env))
                        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
            finally:
                os.killpg(node.pid, signal.SIGINT)
                node.wait(30)
    finally:
        observer.node.destroy_node()
    print(json.dumps({
        "rmw": get_rmw_implementation_identifier(),
        "dds_config": args.dds_config, "dds_config_on": args.dds_config_on if args.dds_config else None,
        "fastdds_builtin_transports": env.get("FASTDDS_BUILTIN_TRANSPORTS"),
        "publisher_qos": args.publisher_qos, "node_image_qos": args.node_qos,
        "profile": args.profile, "device": args.device, "seconds_per_setting": args.seconds,
        "cpu_count": os.cpu_count(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.monotonic() - started, 1),
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
