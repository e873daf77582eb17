"""LLM bridge node: emotion estimates in, emotion-aware LLM replies out.

Topics: subscribes ``emotions`` (emotion_msgs/EmotionStateArray, best-effort so it matches any
publisher) and ``user_text`` (std_msgs/String); publishes ``reply`` (std_msgs/String),
``reply_tokens`` (std_msgs/String, one message per streamed chunk) and ``emotion_context``
(std_msgs/String, transient-local: late joiners get the current sentence; published on change).
Services: ``chat`` (emotion_msgs/Chat); ``~/forget_persons`` (emotion_msgs/ForgetPersons: erase
what the bridge keeps of one person, their emotion timeline and conversation, or of everyone).

Threading: the LLM runs on the core bridge's own worker thread, never on the executor. A Chat
call has to return its response from the callback, so it waits for its reply on one executor
thread: the node runs a MultiThreadedExecutor with ``max_concurrent_service_calls + 2`` threads,
the service sits in a ReentrantCallbackGroup and refuses calls beyond that number, so topics and
the context timer always have a free thread. All logic lives in ``emotion_perception.llm``.
"""
from __future__ import annotations

import concurrent.futures
import threading

from emotion_msgs.msg import EmotionStateArray
from emotion_msgs.srv import Chat, ForgetPersons
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from ..llm.bridge import BridgeReply, forget_person
from ..llm.params import PARAMETERS, backend_url, build_bridge, remote_backend_warning
from ..messages import array_msg_to_estimates
from .declare import declare, read
from .spin import run


class LLMBridgeNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("llm_bridge", **kwargs)
        declare(self, PARAMETERS, read_only=True)
        values = read(self, PARAMETERS)
        self._values = values
        self.tracker, self.bridge = build_bridge(values, self._now_ns)
        self.service_slots = int(values["max_concurrent_service_calls"])
        self._slots = threading.BoundedSemaphore(max(self.service_slots, 1))
        self._last_context: str | None = None

        io = MutuallyExclusiveCallbackGroup()
        self.reply_pub = self.create_publisher(String, "reply", 10)
        self.token_pub = self.create_publisher(String, "reply_tokens", 100)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.context_pub = self.create_publisher(String, "emotion_context", latched)
        best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(EmotionStateArray, "emotions", self._on_emotions, best_effort, callback_group=io)
        self.create_subscription(String, "user_text", self._on_user_text, 10, callback_group=io)
        self.create_service(Chat, "chat", self._on_chat, callback_group=ReentrantCallbackGroup())
        # node-private (~/): the perception node's forget_persons erases the face data of the same ids
        self.create_service(ForgetPersons, "~/forget_persons", self._on_forget, callback_group=io)
        self.create_timer(float(values["context_period_s"]), self._publish_context, callback_group=io)
        self._publish_context()
        self.get_logger().info(f"LLM bridge ready: {values['backend']} model {values['model']!r} at {backend_url(values)}")
        warning = remote_backend_warning(values)
        if warning:
            self.get_logger().warning(warning)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_emotions(self, msg: EmotionStateArray) -> None:
        try:
            self.tracker.update(array_msg_to_estimates(msg), self._now_ns())
        except ValueError as e:
            self.get_logger().warning(f"ignoring an EmotionStateArray: {e}", throttle_duration_sec=5.0)
            return
        self._publish_context()

    def _publish_context(self) -> None:
        sentence = self.tracker.context(self._now_ns()).sentence
        if sentence != self._last_context:
            self._last_context = sentence
            self.context_pub.publish(String(data=sentence))

    def _publish_token(self, request_id: int, chunk: str) -> None:
        self.token_pub.publish(String(data=chunk))

    def _on_user_text(self, msg: String) -> None:
        self.bridge.submit(msg.data, "", self._publish_token).add_done_callback(self._on_topic_reply)

    def _on_topic_reply(self, future: concurrent.futures.Future) -> None:
        reply: BridgeReply = future.result()
        if reply.ok:
            self.reply_pub.publish(String(data=reply.result.text))
            return
        self.get_logger().error(f"request {reply.request_id} failed [{reply.result.error_kind}]: {reply.result.error}")
        text = self._values["error_reply"]
        if text:
            self.reply_pub.publish(String(data=text.replace("{error}", reply.result.error)))

    def _on_forget(self, request: ForgetPersons.Request, response: ForgetPersons.Response) -> ForgetPersons.Response:
        response.success, response.forgotten, response.message = forget_person(
            self.tracker, self.bridge.memory, request.person_id)
        self.get_logger().info(f"forget_persons({request.person_id!r}): {response.message}")
        return response

    def _on_chat(self, request: Chat.Request, response: Chat.Response) -> Chat.Response:
        if not self._slots.acquire(blocking=False):
            response.success = False
            response.error = f"too many concurrent chat calls (limit {self.service_slots}); try again later"
            return response
        try:
            future = self.bridge.submit(request.text, request.user_id, self._publish_token)
            timeout = float(self._values["service_timeout_s"])
            try:
                reply: BridgeReply = future.result(timeout=timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()  # skipped by the worker if it has not started it yet
                response.success = False
                response.error = f"no answer within service_timeout_s = {timeout:g} s"
                return response
            response.success = reply.ok
            response.reply = reply.result.text
            response.error = reply.result.error
            response.emotion_context = reply.emotion_context
            if reply.ok and self._values["publish_service_replies"]:
                self.reply_pub.publish(String(data=reply.result.text))
            return response
        finally:
            self._slots.release()

    def destroy_node(self) -> None:
        self.bridge.close()
        super().destroy_node()


def main(args=None) -> None:
    run(LLMBridgeNode, args, lambda node: MultiThreadedExecutor(num_threads=node.service_slots + 2))


if __name__ == "__main__":
    main()
