"""eval_node: score perception live during ``ros2 bag play`` and write the offline report.

    ros2 run emotion_perception eval_node --ros-args -p labels_file:=labels.csv -p recording:=rec/ \
        -p image_topic:=/camera/image_raw -p output_dir:=report_live -p use_sim_time:=true

Subscribes ``emotions`` (EmotionStateArray), optionally ``image_topic`` and ``label_topic``
(all best-effort, depth 100, so any publisher matches). The service ``~/write_report``
(std_srvs/Trigger) writes the report at any time; it is written again on shutdown. All logic is
in ``emotion_perception.evaluation.live`` (ROS-free): this node only translates messages.
"""
from __future__ import annotations

import sys

import rclpy
from emotion_msgs.msg import EmotionStateArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ..evaluation.live import PARAMETERS, LiveEvaluator
from ..messages import array_msg_to_estimates, stamp_to_ns
from .declare import declare, read
from .spin import run


class EvalNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("eval_node", **kwargs)
        declare(self, PARAMETERS, read_only=True)
        values = read(self, PARAMETERS)
        self.evaluator = LiveEvaluator(values)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(EmotionStateArray, values["results_topic"], self._on_results, qos)
        if values["image_topic"]:
            image_type = CompressedImage if values["image_transport"] == "compressed" else Image
            self.create_subscription(image_type, values["image_topic"], self._on_image, qos)
        if values["label_topic"] and not values["labels_file"]:
            self.create_subscription(String, values["label_topic"], self._on_label, qos)
        self.create_service(Trigger, "~/write_report", self._on_write)
        if values["labels_file"] and not values["recording"]:
            self.get_logger().warning(
                "no recording set: frames are numbered as they arrive, so frames lost before the first one "
                "(while discovery matches `ros2 bag play`) shift the labels; set recording:=<the bag being played>")
        self.get_logger().info(f"scoring {self.resolve_topic_name(values['results_topic'])}; report to "
                               f"{values['output_dir']} on ~/write_report and at shutdown")

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_results(self, msg: EmotionStateArray) -> None:
        self.evaluator.add_results(stamp_to_ns(msg.header.stamp), array_msg_to_estimates(msg), self._now_ns())

    def _on_image(self, msg) -> None:
        self.evaluator.add_image(stamp_to_ns(msg.header.stamp))

    def _on_label(self, msg: String) -> None:
        self.evaluator.add_label(self._now_ns(), msg.data)

    def write_report(self) -> str:
        ev, paths = self.evaluator.write({"node": self.get_fully_qualified_name()})
        data = ev.to_dict()
        return (f"UAR {data['uar']:.3f} WAR {data['war']:.3f} over {data['scored_samples']} samples, "
                f"{data['dropped_frames']} dropped; report: {paths['html']}")

    def _on_write(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            response.message = self.write_report()
            response.success = True
        except ValueError as exc:  # no results yet, bad labels
            response.success, response.message = False, str(exc)
        return response


def _final_report(node: EvalNode) -> None:
    if node.evaluator.count:
        try:
            print(node.write_report())
        except ValueError as exc:
            print(f"eval_node: no report written: {exc}")


def main(args=None) -> None:
    try:
        run(EvalNode, args, before_destroy=_final_report)
    except ValueError as exc:  # no labels to score against, bad labels file: say so, no traceback
        rclpy.logging.get_logger("eval_node").fatal(str(exc))
        sys.exit(2)


if __name__ == "__main__":
    main()
