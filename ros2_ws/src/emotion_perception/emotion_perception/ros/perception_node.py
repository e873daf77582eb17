"""The perception node: camera images in, per-face emotion states out (ROS 2 Humble and Jazzy).

A lifecycle node, so a robot's lifecycle manager (or ``head.launch.py`` by itself) decides when
the model occupies the GPU:

- configure: read parameters, load the model (``pipeline.create_engine``), create topics;
- activate: start a worker thread and process images;
- deactivate: stop processing, drop the model and empty the CUDA cache (activate reloads it);
- cleanup / shutdown: destroy topics and timers.

With ``autostart: true`` it configures and activates itself once, right after start, from its
own executor (``head.launch.py`` sets it): no launch-side service client that a Ctrl-C during
start-up could tear down mid-call. Later transitions stay with the caller or a lifecycle manager.

Topics (relative names, so namespaces and remapping work):

- in: ``image`` (sensor_msgs/Image), or ``image/compressed`` (CompressedImage) with
  ``image_transport: compressed``; ``image_topics`` lists several cameras, one subscription each.
  Their reliability follows the publishers with ``image_qos: auto`` (``camera_link``): re-checked
  every second, a subscription whose choice changed is made anew.
- out: ``emotions`` (emotion_msgs/EmotionStateArray, all faces of a frame, header = the image's),
  ``emotion`` (emotion_msgs/EmotionState, one message per face, ``face_id`` inside),
  ``debug_image`` (sensor_msgs/Image, drawn only while subscribed), ``/diagnostics`` (2 Hz: the
  node, then one status per camera); with hri_msgs installed, ``/humans/faces/<id>/expression``
  (hri_msgs/Expression) and ``/humans/faces/tracked`` (hri_msgs/IdsList), and for re-identified
  persons ``/humans/persons/tracked`` (IdsList) and ``/humans/persons/<id>/face_id`` (std_msgs/String,
  latched: transient local, as ROS4HRI's libhri subscribes to it).
- service: ``forget_persons`` (emotion_msgs/ForgetPersons): erase one person's or everyone's
  re-identification data, in memory and in the opt-in gallery file (docs/persons.md).

Persons: with ``identity`` on, each state's ``person_id`` survives absences. The gallery of
face embeddings belongs to the node, not to the engine: it outlives deactivate (which frees the
model) and ends at cleanup, written to ``gallery_path`` first when the user opted in to a file.

Several cameras: face ids carry the camera's index in ``image_topics`` (``cam0_face_1``,
``cam1_face_1``) on every output, so consumers keyed by id (the LLM bridge) see distinct people.
``/humans/faces/tracked`` is one list over all cameras; with one camera its header is the image's
(as hri_face_detect does), with several its frame_id is empty, since the ids lie in several
camera frames (each Expression carries its own image's header).

Inference runs off the executor on a ``LatestFrameWorker`` (one latest-frame slot per camera),
so a slow model drops stale frames instead of blocking callbacks or growing a queue. The node
only translates: conversion is in ``..messages``, parameters in ``params``, diagnostics in
``diagnostics`` — all ROS-free and tested in CI.
"""
from __future__ import annotations

import functools
import gc
import sys
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from emotion_msgs.msg import EmotionState, EmotionStateArray
from emotion_msgs.srv import ForgetPersons
from lifecycle_msgs.msg import Transition
from rcl_interfaces.msg import SetParametersResult
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
    qos_policy_name_from_kind,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

try:  # Iron and later (Jazzy)
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

from ..engine import LatestFrameWorker
from ..images import ImageError
from ..labels import NUM_CLASSES
from ..persons import PersonGallery, forget_persons
from ..types import Box, EmotionEstimate
from ..visualize import draw_estimates
from ..messages import (
    MessageTypes,
    compressed_msg_to_frame,
    estimate_to_expression,
    estimates_to_array_msg,
    hri_face_id,
    image_msg_to_frame,
    rgb_to_image_msg,
)
from .camera_link import BEST_EFFORT, RELIABLE, choose_reliability
from .declare import declare, read
from .diagnostics import (
    ERROR, OK, STALE, WARN, ProcessingMonitor, Thresholds, evaluate, evaluate_camera, status_names,
)
from .params import BY_NAME, PARAMETERS, engine_options, validate
from .spin import run
from .tracked import TrackedFaces

NODE_NAME = "perception_node"
_LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR,
           STALE: DiagnosticStatus.STALE}
_PROBE = EmotionEstimate("probe", Box(0, 0, 1, 1), np.full(NUM_CLASSES, 1 / NUM_CLASSES, np.float32), 1, "probe")
_TRANSITION_NAMES = {v: k[len("TRANSITION_"):].lower() for k, v in vars(Transition).items()
                     if k.startswith("TRANSITION_")}
_QOS = {
    RELIABLE: QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE),
    BEST_EFFORT: qos_profile_sensor_data,
}
_OFFERED = {ReliabilityPolicy.RELIABLE: RELIABLE, ReliabilityPolicy.BEST_EFFORT: BEST_EFFORT}
QOS_RECHECK_S = 1.0  # how often image_qos auto looks at the publishers again
# REP-155's latched topics (/humans/persons/<id>/face_id): ROS4HRI's libhri subscribes to them
# transient local and reliable, which a volatile publisher does not serve (incompatible QoS)
_LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _per_id_publisher(node, msg_type, topic: str, qos):
    """A publisher of a REP-155 per-id topic, made and destroyed on the inference worker's thread as
    people come and go. It gets no QoS event handlers (rclpy's default ones warn of incompatible
    subscribers): those are executor waitables, and destroying a publisher while the executor
    builds its wait set on the spinning thread raised InvalidHandle there (rclpy, Jazzy), which
    ended the node's spin (tests/ros/test_perception_hri.py: in a few of some 40 runs, the node
    stopped answering after a face left)."""
    no_events = PublisherEventCallbacks(use_default_callbacks=False)
    return node.create_publisher(msg_type, topic, qos, event_callbacks=no_events)


class PerceptionNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        declare(self, PARAMETERS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._refuse_invalid_transitions()
        self._types = MessageTypes.from_rclpy()
        self._values: dict = {}
        self._engine = None
        self._choice = None
        self._worker: LatestFrameWorker | None = None
        self._active = False
        self._monitor = ProcessingMonitor()
        self._subs: list = []
        self._sources: list[str] = []
        self._qos: list[tuple[str, str]] = []  # per subscription: (reliability, why)
        self._qos_timer = None
        self._pubs: dict = {}  # lifecycle publishers by topic
        self._diag_pub = None
        self._diag_timer = None
        self._hri_pubs: dict = {}  # face id -> Expression publisher
        self._tracked: TrackedFaces | None = None
        self._hri_lock = threading.Lock()  # the worker publishes results, a timer expires faces
        self._hri_timer = None
        self._person_pubs: dict = {}  # person id -> face_id publisher
        self._tracked_persons: TrackedFaces | None = None
        self._gallery: PersonGallery | None = None
        self._forget_srv = None
        self._autostart_timer = None
        if self.get_parameter("autostart").value:
            self._autostart_timer = self.create_timer(0.0, self._autostart_step)

    # ----------------------------------------------------------------------------- parameters
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        for param in parameters:
            spec = BY_NAME.get(param.name)
            if spec is None:
                continue
            try:
                spec.check(param.value)
            except ValueError as err:
                return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _read_parameters(self) -> dict:
        return validate(read(self, PARAMETERS))

    # ----------------------------------------------------------------------------- lifecycle
    def _refuse_invalid_transitions(self) -> None:
        """Answer a change_state request that is invalid in the current state with success=false.

        rclpy (Humble, Jazzy) lets rcl's "Transition is not registered" error escape the service
        callback, which ends the executor's spin: one stray request from a lifecycle manager or a
        second launch killed the node. The service object is rclpy's own (no public hook)."""
        service = self._service_change_state
        change_state = service.callback

        def guarded(request, response):
            try:
                return change_state(request, response)
            except _rclpy.RCLError as err:
                t = request.transition
                name = _TRANSITION_NAMES.get(t.id, "unknown")
                self.get_logger().warning(
                    f"refused lifecycle transition {name} (id {t.id}) in state "
                    f"{self._state_machine.current_state[1]}: {err}")
                response.success = False
                return response

        service.callback = guarded

    def _autostart_step(self) -> None:
        """Timer: configure, then (next tick, so that a Ctrl-C in between is seen) activate; once."""
        state = self._state_machine.current_state[1]
        if state == "unconfigured":
            self.get_logger().info("autostart: configuring")
            self.trigger_configure()
            if self._state_machine.current_state[1] == "inactive":
                return
        elif state == "inactive":
            self.get_logger().info("autostart: activating")
            self.trigger_activate()
        self.destroy_timer(self._autostart_timer)
        self._autostart_timer = None

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._values = self._read_parameters()
            v = self._values
            if v["identity"]:
                path = v.get("gallery_path") or None
                self._gallery = PersonGallery(threshold=v["gallery_threshold"], path=path,
                                              retention_s=v["gallery_retention_s"] if path else None)
            self._load_engine()
            self._create_interfaces()
        except Exception as err:  # a bad parameter or missing weights: stay unconfigured, say why
            self.get_logger().error(f"configure failed: {type(err).__name__}: {err}")
            self._destroy_interfaces()
            self._free_engine()
            self._close_gallery()
            return TransitionCallbackReturn.FAILURE
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        try:
            if self._engine is None:  # freed by deactivate
                self._load_engine()
        except Exception as err:
            self.get_logger().error(f"activate failed: {type(err).__name__}: {err}")
            return TransitionCallbackReturn.FAILURE
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        self._engine.set_cameras(self._sources)
        self._monitor = ProcessingMonitor(cameras=self._sources)
        self._tracked = TrackedFaces(self._engine.config.track_patience_s)
        self._tracked_persons = TrackedFaces(self._engine.config.track_patience_s)
        self._worker = LatestFrameWorker(self._engine, self._on_result, self._on_error, on_drop=self._on_drop)
        self._active = True
        self.get_logger().info(f"processing {', '.join(self._sources)} ({self._values['image_transport']})")
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_processing()
        self._free_engine()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._stop_processing()
        self._destroy_interfaces()
        self._free_engine()
        self._close_gallery()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_processing()
        self._destroy_interfaces()
        self._free_engine()
        self._close_gallery()
        return super().on_shutdown(state)

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from {state.label}; back to unconfigured")
        self._stop_processing()
        self._destroy_interfaces()
        self._free_engine()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        self._stop_processing()
        self._free_engine()
        self._close_gallery()
        return super().destroy_node()

    def _load_engine(self) -> None:
        from ..pipeline import create_engine  # torch and the model: only when configuring

        self._engine, self._choice = create_engine(**engine_options(self._values), gallery=self._gallery)
        self.get_logger().info(
            f"model profile {self._choice.profile.name} on {getattr(self._engine, 'device', '?')}: "
            f"{self._choice.reason}"
        )

    def _close_gallery(self) -> None:
        """End of the session: an opted-in gallery file gets the latest sightings; memory is dropped."""
        if self._gallery is not None:
            try:
                self._gallery.save()
            except OSError as err:
                self.get_logger().error(f"could not write the person gallery: {err}")
            self._gallery = None

    def _on_forget(self, request, response):
        """Service: erase one person (``person_id``) or everyone (empty), memory and file."""
        identity = getattr(self._engine, "identity", None)
        target = identity if identity is not None else self._gallery
        if target is None:
            response.success, response.forgotten, response.message = False, 0, "identity is off: nothing is kept"
            return response
        try:
            response.success, response.forgotten, response.message = forget_persons(target, request.person_id)
        except OSError as err:  # the file could not be rewritten: say so, memory is erased already
            response.success, response.forgotten, response.message = False, 0, f"erased in memory, not on disk: {err}"
        self.get_logger().info(f"forget_persons({request.person_id!r}): {response.message}")
        return response

    def _free_engine(self) -> None:
        """Drop every reference to the model and give its GPU memory back to the driver."""
        self._engine = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _stop_processing(self) -> None:
        self._active = False
        if self._worker is not None:
            if not self._worker.close(timeout=10.0):
                self.get_logger().warning("the inference worker did not stop within 10 s")
            self._worker = None
        with self._hri_lock:
            for key, pubs, tracked in (("tracked", self._hri_pubs, self._tracked),
                                       ("persons_tracked", self._person_pubs, self._tracked_persons)):
                out = self._pubs.get(key)
                if pubs and out is not None:  # REP-155: nobody is tracked any more
                    out.publish(self._types.IdsList(header=self._neutral_header(), ids=[]))
                for pub in pubs.values():
                    self.destroy_publisher(pub)
                pubs.clear()
                if tracked is not None:
                    tracked.clear()

    # ----------------------------------------------------------------------------- topics
    def _create_interfaces(self) -> None:
        v, t = self._values, self._types
        self._pubs["emotions"] = self.create_lifecycle_publisher(EmotionStateArray, "emotions", 10)
        self._pubs["emotion"] = self.create_lifecycle_publisher(EmotionState, "emotion", 10)
        if v["publish_debug_image"]:
            self._pubs["debug_image"] = self.create_lifecycle_publisher(Image, "debug_image", 1)
        if v["publish_hri"] and self._hri_supported():
            self._pubs["tracked"] = self.create_lifecycle_publisher(t.IdsList, "/humans/faces/tracked", 1)
            self._pubs["persons_tracked"] = self.create_lifecycle_publisher(t.IdsList, "/humans/persons/tracked", 1)
            self._hri_timer = self.create_timer(0.1, self._expire_hri)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._forget_srv = self.create_service(ForgetPersons, "forget_persons", self._on_forget)
        self._diag_timer = self.create_timer(0.5, self._publish_diagnostics)

        compressed = v["image_transport"] == "compressed"
        for index, topic in enumerate(v["image_topics"]):
            name = f"{topic}/compressed" if compressed else topic
            sub, choice = self._subscribe(index, name)
            self._subs.append(sub)
            self._sources.append(sub.topic_name)  # resolved: namespace and remapping applied
            self._qos.append(choice)
            self.get_logger().info(f"subscribed to {sub.topic_name} {choice[0]} ({choice[1]})")
        if v["image_qos"] == "auto":
            self._qos_timer = self.create_timer(QOS_RECHECK_S, self._follow_publishers)

    def _subscribe(self, index: int, topic: str):
        """A subscription to ``topic`` with the reliability image_qos gives for its publishers now."""
        choice = choose_reliability(self._values["image_qos"], self._offered(topic))
        msg_type = CompressedImage if self._values["image_transport"] == "compressed" else Image
        events = SubscriptionEventCallbacks(incompatible_qos=functools.partial(self._on_incompatible_qos, index))
        sub = self.create_subscription(msg_type, topic, functools.partial(self._on_image, index), _QOS[choice[0]],
                                       event_callbacks=events)
        return sub, choice

    def _offered(self, topic: str) -> list[str]:
        return [_OFFERED[info.qos_profile.reliability] for info in self.get_publishers_info_by_topic(topic)
                if info.qos_profile.reliability in _OFFERED]

    def _follow_publishers(self) -> None:
        """Timer (image_qos auto): subscribe anew where the publishers now call for the other reliability."""
        for index, sub in enumerate(self._subs):
            topic = sub.topic_name
            reliability, why = choose_reliability("auto", self._offered(topic))
            if reliability == self._qos[index][0]:
                self._qos[index] = (reliability, why)
                continue
            self.destroy_subscription(sub)
            self._subs[index], self._qos[index] = self._subscribe(index, topic)
            self.get_logger().info(f"{topic}: subscription now {reliability} ({why})")

    def _hri_supported(self) -> bool:
        """hri_msgs installed, and recent enough (0.8+: Expression has a header, string expression)."""
        t = self._types
        if t.Expression is None:
            return False
        try:
            estimate_to_expression(_PROBE, t.header(0, ""), t.Expression)
        except Exception as err:
            self.get_logger().warning(
                f"hri_msgs is installed but its Expression does not fit ({type(err).__name__}: {err}); "
                "REP-155 output off (needs hri_msgs 0.8 or later)")
            return False
        return True

    def _destroy_interfaces(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs.clear()
        self._sources.clear()
        self._qos.clear()
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs.clear()
        for timer in (self._diag_timer, self._hri_timer, self._qos_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._diag_timer = self._hri_timer = self._qos_timer = None
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None
        if self._forget_srv is not None:
            self.destroy_service(self._forget_srv)
            self._forget_srv = None

    def _on_incompatible_qos(self, index: int, info) -> None:
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        reliability, why = self._qos[index]
        if self._values["image_qos"] == "auto" and info.last_policy_kind == QoSPolicyKind.RELIABILITY:
            self.get_logger().info(f"a best-effort publisher joined {self._sources[index]}: "
                                   f"image_qos auto subscribes best effort within {QOS_RECHECK_S:g} s")
            return
        self.get_logger().warning(
            f"a publisher on {self._sources[index]} offers QoS incompatible with this subscription "
            f"({policy}); no images will arrive from it. The subscription is {reliability} ({why}): "
            "set image_qos to auto or best_effort, or change the publisher")

    # ----------------------------------------------------------------------------- processing
    def _on_image(self, index: int, msg) -> None:
        """Executor thread: convert and hand over; never waits for inference."""
        worker = self._worker
        if not self._active or worker is None:
            return
        source = self._sources[index]
        monitor = self._monitor
        stamp = msg.header.stamp
        received = monitor.received(source, stamp.sec * 1_000_000_000 + stamp.nanosec)
        try:
            if self._values["image_transport"] == "compressed":
                frame = compressed_msg_to_frame(msg, source)
            else:
                frame = image_msg_to_frame(msg, source)
        except ImageError as err:
            monitor.rejected(source)
            # rclpy throttles per call site, and its arguments must not change between calls
            self.get_logger().warning(f"dropping an image from {source}: {err}",
                                      throttle_duration_sec=self._values["error_log_period_s"])
            return
        monitor.admit(frame, received)
        try:
            worker.submit(frame)
        except RuntimeError:  # closed by a concurrent deactivate
            monitor.dropped(frame)

    def _on_drop(self, frame) -> None:
        """A frame the worker replaced with a newer one, or discarded when it closed."""
        self._monitor.dropped(frame)

    def _on_result(self, frame, estimates) -> None:
        """Worker thread: publish one frame's estimates on every output."""
        if not self._active:  # finished while deactivating: not published
            self._monitor.dropped(frame)
            return
        t = self._types
        header = t.header(frame.stamp_ns, frame.frame_id)  # the image's header
        h, w = frame.image.shape[:2]
        array = estimates_to_array_msg(estimates, header, t, image_size=(w, h))
        self._pubs["emotions"].publish(array)
        for state in array.states:
            self._pubs["emotion"].publish(state)
        debug = self._pubs.get("debug_image")
        if debug is not None and debug.get_subscription_count() > 0:
            debug.publish(rgb_to_image_msg(draw_estimates(frame.image, estimates), header, t))
        if "tracked" in self._pubs:
            self._publish_hri(frame, header, estimates)
        self._monitor.published(frame)

    def _neutral_header(self):
        """For an IdsList not tied to one image: now, no frame."""
        return Header(stamp=self.get_clock().now().to_msg(), frame_id="")

    def _publish_hri(self, frame, header, estimates) -> None:
        """REP-155: one Expression topic per tracked face, and the list of tracked ids; for each
        re-identified person its current face id, and the list of tracked persons."""
        faces = {hri_face_id(e.face_id): e for e in estimates}
        persons = {hri_face_id(e.person_id): hri_face_id(e.face_id) for e in estimates if e.person_id}
        with self._hri_lock:
            for face_id, est in faces.items():
                pub = self._hri_pubs.get(face_id)
                if pub is None:
                    pub = _per_id_publisher(self, self._types.Expression, f"/humans/faces/{face_id}/expression", 1)
                    self._hri_pubs[face_id] = pub
                pub.publish(estimate_to_expression(est, header, self._types.Expression))
            for person_id, face_id in persons.items():
                pub = self._person_pubs.get(person_id)
                if pub is None:
                    pub = _per_id_publisher(self, String, f"/humans/persons/{person_id}/face_id", _LATCHED)
                    self._person_pubs[person_id] = pub
                pub.publish(String(data=face_id))
            now = time.monotonic()
            tracked = self._tracked.update(frame.source, faces, now)
            tracked_persons = self._tracked_persons.update(frame.source, persons, now)
            if len(self._sources) > 1:  # the list spans several camera frames
                header = self._types.header(frame.stamp_ns, "")
            self._publish_tracked(header, tracked)
            self._publish_tracked(header, tracked_persons, "persons_tracked", self._person_pubs)

    def _expire_hri(self) -> None:
        """Timer: drop the faces of cameras that stopped sending (see ``TrackedFaces``)."""
        if not self._active or self._tracked is None:
            return
        with self._hri_lock:
            now = time.monotonic()
            if self._tracked.expire(now):
                self._publish_tracked(self._neutral_header(), self._tracked.ids())
            if self._tracked_persons.expire(now):
                self._publish_tracked(self._neutral_header(), self._tracked_persons.ids(), "persons_tracked",
                                      self._person_pubs)

    def _publish_tracked(self, header, tracked: list[str], key: str = "tracked", pubs: dict | None = None) -> None:
        """The list of tracked face (or person) ids; the per-id publishers of those gone are destroyed."""
        pubs = self._hri_pubs if pubs is None else pubs
        for gone in set(pubs) - set(tracked):
            self.destroy_publisher(pubs.pop(gone))
        self._pubs[key].publish(self._types.IdsList(header=header, ids=tracked))

    def _on_error(self, frame, err: Exception) -> None:
        self._monitor.failed(frame)
        self.get_logger().warning(
            f"inference failed on a frame from {frame.source}: {type(err).__name__}: {err}",
            throttle_duration_sec=self._values["error_log_period_s"])

    # ----------------------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        thresholds = Thresholds.from_params(
            {p.name: self.get_parameter(p.name).value for p in PARAMETERS if p.name.startswith("diag_")})
        extra = {"cameras": ", ".join(self._sources), "image transport": self._values.get("image_transport", "")}
        if self._choice is not None:
            extra["model profile"] = self._choice.profile.name
            extra["profile chosen because"] = self._choice.reason
        # not engine.stats(): it waits for the engine's lock, i.e. for the batch in progress
        device = str(getattr(self._engine, "device", self._values.get("device", "")))
        extra["device"] = device
        snap = self._monitor.snapshot()
        name, camera_names = status_names(self.get_fully_qualified_name(), snap.cameras)
        reports = [(name, evaluate(snap, thresholds, active=self._active, extra=extra))]
        qos = dict(zip(self._sources, self._qos))
        reports += [(camera_name, evaluate_camera(camera, thresholds, active=self._active,
                                                  extra=_qos_values(qos.get(source))))
                    for camera_name, (source, camera) in zip(camera_names, snap.cameras.items())]
        statuses = [
            DiagnosticStatus(level=_LEVELS[report.level], name=title, message=report.message, hardware_id=device,
                             values=[KeyValue(key=k, value=val) for k, val in report.values])
            for title, report in reports
        ]
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id="")
        self._diag_pub.publish(DiagnosticArray(header=header, status=statuses))


def _qos_values(choice: tuple[str, str] | None) -> dict:
    return {} if choice is None else {"subscription reliability": choice[0], "reliability chosen because": choice[1]}


def main(args=None) -> None:
    run(PerceptionNode, args)


if __name__ == "__main__":
    main()
