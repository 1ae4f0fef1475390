"""Everything the node needs that differs between the ROS 2 distributions' rclpy, in one place.

Checked against rclpy's sources of Humble (3.3), Jazzy (7.1) and Kilted (9.1):

- Set-parameters callbacks: Humble has only ``add_on_set_parameters_callback``; callbacks run
  newest first, after rclpy's own checks of type, range and read-only, and the values are
  stored once every callback accepted them. The pre/post variants came with Iron.
- Subscription callbacks taking a ``MessageInfo`` (the middleware's reception time, the
  writer's source time) came with Iron; Humble's executor hands the callback the message alone.
- ``PublisherEventCallbacks``, ``SubscriptionEventCallbacks`` (``message_lost`` included) and
  ``UnsupportedEventTypeError`` live in ``rclpy.qos_event`` on Humble, ``rclpy.event_handler``
  from Iron on (``qos_event`` is a deprecated alias there); ``use_default_callbacks`` exists
  on all three.

The same on all three, so used directly: ``rclpy.init(domain_id=...)``, ``try_shutdown``,
``ExternalShutdownException``, ``create_timer(clock=...)``, ``get_publishers_info_by_topic``,
``raw`` subscriptions, ``RcutilsLogger.warning`` (``warn`` is deprecated in Kilted). Not used
because Humble lacks them: the ``BEST_AVAILABLE`` QoS policies (the node's own ``auto``
reliability also follows writers that appear later), a ``Context`` as a ``with`` block and
``create_timer(autostart=...)`` (Jazzy).
"""
from __future__ import annotations

import time
from typing import Any, Callable

from rcl_interfaces.msg import SetParametersResult

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.subscription import Subscription

Validate = Callable[[list[Parameter]], SetParametersResult]
Apply = Callable[[list[Parameter]], None]


def add_parameter_callbacks(node: Node, validate: Validate, apply: Apply) -> None:
    """``validate`` decides every change; ``apply`` sees each change that was accepted.

    Iron and later: an on-set and a post-set callback. Humble: one on-set callback that
    applies what it accepted; rclpy stores the values right after it returns (only callbacks
    registered earlier, such as the time source's ``use_sim_time`` check, run after it).
    """
    if hasattr(node, "add_post_set_parameters_callback"):
        node.add_on_set_parameters_callback(validate)
        node.add_post_set_parameters_callback(apply)
        return

    def validate_then_apply(params: list[Parameter]) -> SetParametersResult:
        result = validate(params)
        if result.successful:
            apply(params)
        return result

    node.add_on_set_parameters_callback(validate_then_apply)


def subscribe_with_message_times(
    node: Node, msg_type: type, topic: str, callback: Callable[[Any, int, int | None], None], qos: Any,
    on_lost: Callable[[int], None] | None = None,
) -> tuple[Subscription, bool]:
    """``callback(msg, received_ns, sent_ns)``: when the middleware received it and when its
    writer wrote it (Iron and later), else when the callback runs and None (Humble); system
    time in ns, each on its own host's clock.

    ``on_lost(n)``: the middleware found ``n`` more messages of this topic lost on the way
    (gaps in a writer's sequence numbers: best-effort samples whose fragments never all
    arrived). Returns the subscription and whether the middleware reports losses (Fast DDS
    does; under an RMW that does not, the subscription comes without it).
    """
    if hasattr(Subscription, "CallbackType"):
        def on_message(msg: Any, info: Any) -> None:
            callback(msg, info["received_timestamp"], info["source_timestamp"])
    else:
        def on_message(msg: Any) -> None:
            callback(msg, time.time_ns(), None)
    if on_lost is not None:
        events = SubscriptionEventCallbacks(message_lost=lambda status: on_lost(status.total_count_change))
        try:
            return node.create_subscription(msg_type, topic, on_message, qos, event_callbacks=events), True
        except UnsupportedEventTypeError:
            pass
    return node.create_subscription(msg_type, topic, on_message, qos), False


def without_event_handlers() -> PublisherEventCallbacks:
    """``event_callbacks`` for a publisher with none of rclpy's default event handlers.

    By default every publisher gets one (Humble) or two (incompatible QoS and type, later
    distributions) event handlers, each a waitable that the Python executor puts into its wait
    set on every wake-up. The node wakes for every image and camera_info of every camera, and
    has a dozen output publishers per camera: with four cameras the handlers made the
    executor's work grow with the square of the cameras (``bench cameras``, docs/measurements.md).
    What they reported stays visible: a subscriber asking for incompatible QoS or another type
    is warned by its own default handler (rclcpp and rclpy alike, RViz included).
    """
    return PublisherEventCallbacks(use_default_callbacks=False)
