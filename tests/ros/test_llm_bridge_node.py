"""The LLM bridge node in-process, on a real ROS 2 graph (Humble/Jazzy), against the Ollama stand-in
and against a real llama.cpp server.

Skips without rclpy and the built emotion_msgs (source the workspace: `. install/setup.bash`).
"""
from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy); source /opt/ros/<distro>/setup.bash")
pytest.importorskip("emotion_msgs.msg", reason="needs the built emotion_msgs package (source install/setup.bash)")

from emotion_msgs.msg import EmotionState, EmotionStateArray  # noqa: E402
from emotion_msgs.srv import Chat, ForgetPersons  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import RegionOfInterest  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from emotion_perception.ros.llm_bridge_node import LLMBridgeNode  # noqa: E402
from emotion_perception.llm.backends import OpenAICompatibleBackend  # noqa: E402
from llm_servers import StandInServer, llama_cpp_available, llama_server  # noqa: E402
from ros_graph import ros_context, spinning, wait_for  # noqa: E402

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def happy_array(stamp) -> EmotionStateArray:
    state = EmotionState()
    state.header.stamp = stamp
    state.face_id = "7"
    state.face_box = RegionOfInterest(x_offset=10, y_offset=20, width=80, height=90)
    state.class_id, state.class_name, state.confidence = 0, "happy", 0.9
    state.probabilities = [0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01]
    state.polarity = 2
    state.polarity_probabilities = [0.1, 0.2, 0.7]
    state.frames_used, state.model_id = 8, "test"
    msg = EmotionStateArray()
    msg.header.stamp = stamp
    msg.states = [state]
    return msg


@pytest.fixture
def graph():
    """A private ROS context with the bridge node and a test node spinning in the background."""
    with StandInServer(reply="Hello friend.") as server, ros_context() as context:
        bridge = LLMBridgeNode(context=context, parameter_overrides=[
            Parameter("ollama_host", value=server.url),
            Parameter("timeout_s", value=5.0),
            Parameter("retries", value=0),
            Parameter("context.max_age_s", value=60.0),
        ])
        peer = rclpy.create_node("llm_bridge_test_peer", context=context)
        with spinning(context, bridge, peer, threads=bridge.service_slots + 3):
            yield server, bridge, peer


def test_node_injects_context_answers_service_and_topic_and_reports_errors(graph):
    server, bridge, peer = graph
    contexts, replies, tokens = [], [], []
    peer.create_subscription(String, "emotion_context", lambda m: contexts.append(m.data), LATCHED)
    peer.create_subscription(String, "reply", lambda m: replies.append(m.data), 10)
    peer.create_subscription(String, "reply_tokens", lambda m: tokens.append(m.data), 100)
    emotions = peer.create_publisher(EmotionStateArray, "emotions", 10)
    user_text = peer.create_publisher(String, "user_text", 10)
    chat = peer.create_client(Chat, "chat")

    wait_for(lambda: contexts == ["No one is visible."], what="the initial, latched context")
    wait_for(lambda: user_text.get_subscription_count() and bridge.reply_pub.get_subscription_count()
             and bridge.token_pub.get_subscription_count(), what="discovery of the topics")
    deadline = time.monotonic() + 15
    while not any("happy" in c for c in contexts) and time.monotonic() < deadline:
        emotions.publish(happy_array(peer.get_clock().now().to_msg()))  # until discovery has matched
        time.sleep(0.1)
    assert contexts[-1] == "The person in front of you looks happy (confidence 0.90); the scene seems positive."

    assert chat.wait_for_service(timeout_sec=10)
    future = chat.call_async(Chat.Request(text="How do I look?", user_id="ann"))
    wait_for(future.done, what="the chat service reply")
    response = future.result()
    assert response.success, response.error
    assert response.reply == "Hello friend." and response.emotion_context == contexts[-1]
    system = server.requests[-1]["messages"][0]
    assert system["role"] == "system" and contexts[-1] in system["content"]
    assert server.requests[-1]["messages"][-1] == {"role": "user", "content": "How do I look?"}
    wait_for(lambda: "".join(tokens) == "Hello friend.", what="streamed tokens")

    user_text.publish(String(data="Tell me a joke"))
    wait_for(lambda: replies == ["Hello friend."], what="the reply to user_text")

    server.mode = "missing"
    user_text.publish(String(data="Still there?"))
    wait_for(lambda: len(replies) == 2, what="the error reply")
    assert replies[1] == "Sorry, I cannot answer right now."
    future = chat.call_async(Chat.Request(text="Hello?", user_id="ann"))
    wait_for(future.done, what="the failed chat service reply")
    assert not future.result().success and "not found" in future.result().error

    server.mode = "ok"  # the node recovers: the next request is served
    future = chat.call_async(Chat.Request(text="Hello again", user_id="ann"))
    wait_for(future.done, what="the chat service reply after recovery")
    assert future.result().success

    late: list[str] = []  # transient-local: a late subscriber still gets the current sentence
    peer.create_subscription(String, "emotion_context", lambda m: late.append(m.data), LATCHED)
    wait_for(lambda: late == [contexts[-1]], what="the latched context for a late subscriber")


def test_forget_persons_erases_the_persons_conversation_and_emotion_state(graph):
    """~/forget_persons (issue 25): the conversation kept for a person and their emotion state go;
    the next request of that user starts without history; an unknown id is refused."""
    server, bridge, peer = graph
    chat = peer.create_client(Chat, "chat")
    forget = peer.create_client(ForgetPersons, "/llm_bridge/forget_persons")
    assert chat.wait_for_service(timeout_sec=10) and forget.wait_for_service(timeout_sec=10)

    def call(client, request):
        future = client.call_async(request)
        wait_for(future.done, what=f"a {type(request).__name__} reply")
        return future.result()

    assert call(chat, Chat.Request(text="My name is Ann.", user_id="person_3")).success
    assert call(chat, Chat.Request(text="Who am I?", user_id="person_3")).success
    assert {"role": "user", "content": "My name is Ann."} in server.requests[-1]["messages"]
    response = call(forget, ForgetPersons.Request(person_id="person_3"))
    assert (response.success, response.forgotten) == (True, 1), response.message
    assert call(chat, Chat.Request(text="Who am I?", user_id="person_3")).success
    assert [m["role"] for m in server.requests[-1]["messages"]] == ["system", "user"]  # no history left
    response = call(forget, ForgetPersons.Request(person_id="person_9"))
    assert (response.success, response.forgotten) == (False, 0) and "person_9" in response.message


@pytest.mark.parametrize("mode, kind", [("empty", "empty"), ("truncated", "cut short")])
def test_an_empty_or_cut_short_completion_is_an_error_not_a_reply(graph, mode, kind):
    """Issue 11, defect 5: a server that answers nothing, or whose stream ends before its final
    message, used to give `''` on reply as a successful answer. Each mode is checked on both paths."""
    server, bridge, peer = graph
    replies: list[str] = []
    peer.create_subscription(String, "reply", lambda m: replies.append(m.data), 10)
    user_text = peer.create_publisher(String, "user_text", 10)
    chat = peer.create_client(Chat, "chat")
    wait_for(lambda: user_text.get_subscription_count() and bridge.reply_pub.get_subscription_count(),
             what="discovery of the topics")
    server.reply = "Hello there, my friend."  # long enough for "truncated" to cut it after two words
    server.mode = mode
    user_text.publish(String(data="Hello?"))
    wait_for(lambda: replies, what=f"the reply to a {kind} completion")
    assert replies == ["Sorry, I cannot answer right now."]
    assert chat.wait_for_service(timeout_sec=10)
    future = chat.call_async(Chat.Request(text="Hello?", user_id="ann"))
    wait_for(future.done, what="the chat service reply")
    assert not future.result().success and future.result().reply == "" and future.result().error
    server.mode = "ok"
    future = chat.call_async(Chat.Request(text="Hello again", user_id="ann"))
    wait_for(future.done, what="the chat service reply after the fault")
    assert future.result().success and future.result().reply == "Hello there, my friend."

def test_node_answers_from_a_real_llama_cpp_server(shared_data):
    """The Chat service and reply_tokens against llama-cpp-python's OpenAI-compatible server (tiny
    random-weight Qwen2, greedy): the node's reply is what the server says to the same messages."""
    model = shared_data / "llm" / "tiny-random-qwen2.gguf"
    if not model.is_file():
        pytest.skip(f"{model} not found")
    if not llama_cpp_available():
        pytest.skip("llama-cpp-python with its server extra is not installed (pip install 'llama-cpp-python[server]')")
    options = {"temperature": 0.0, "max_tokens": 8}
    with llama_server(model) as url, ros_context() as context:
        bridge = LLMBridgeNode(context=context, parameter_overrides=[
            Parameter("backend", value="openai"),
            Parameter("openai_base_url", value=url + "/v1"),
            Parameter("model", value="tiny"),
            Parameter("temperature", value=options["temperature"]),
            Parameter("max_tokens", value=options["max_tokens"]),
            Parameter("timeout_s", value=60.0),
            Parameter("retries", value=0),
        ])
        peer = rclpy.create_node("llm_bridge_llama_peer", context=context)
        tokens: list[str] = []
        peer.create_subscription(String, "reply_tokens", lambda m: tokens.append(m.data), 100)
        chat = peer.create_client(Chat, "chat")
        with spinning(context, bridge, peer, threads=bridge.service_slots + 3):
            wait_for(lambda: bridge.token_pub.get_subscription_count(), what="discovery of reply_tokens")
            assert chat.wait_for_service(timeout_sec=10)
            future = chat.call_async(Chat.Request(text="Hello robot!", user_id="ann"))
            wait_for(future.done, 120, "the chat service reply")
            response = future.result()
            assert response.success, response.error
            assert response.emotion_context == "No one is visible."
            sent = bridge.bridge.prompt.messages(response.emotion_context, [], "Hello robot!")
            direct = OpenAICompatibleBackend(base_url=url + "/v1", model="tiny", options=options, timeout=60, retries=0)
            expected = direct.chat(sent)
            direct.close()
            assert expected.ok and expected.text, expected.error  # greedy: a non-empty, repeatable answer
            assert response.reply == expected.text
            wait_for(lambda: "".join(tokens) == response.reply, what="the streamed tokens")
