"""A paho-mqtt client made from a BrokerConfig: TLS verified, credentials, MQTT 3.1.1 or 5.

paho is imported here, lazily: a station without a `fleet:` section never loads it.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from .settings import BrokerConfig

log = logging.getLogger(__name__)

# How long a broker keeps a persistent session (and the QoS 1 messages queued for it) while the
# client is away, in seconds (MQTT 5; a 3.1.1 broker keeps it for its own configured time).
SESSION_EXPIRY_S = 7 * 24 * 3600


def paho() -> Any:
    try:
        import paho.mqtt.client as client
    except ImportError as exc:  # the optional extra is missing
        raise RuntimeError("the fleet uplink needs paho-mqtt: pip install 'station-edge[fleet]'") from exc
    return client


def make_client(broker: BrokerConfig, client_id: str, persistent: bool) -> Any:
    """A client not yet connected. `persistent` asks the broker to keep the session (and queue QoS 1
    messages for its subscriptions) while the client is away: the collector and the stations'
    command subscriptions use it, so nothing sent during an outage is lost."""
    mqtt = paho()
    protocol = mqtt.MQTTv5 if broker.protocol == "5" else mqtt.MQTTv311
    kwargs: dict[str, Any] = {}
    if protocol == mqtt.MQTTv311:
        kwargs["clean_session"] = not persistent
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        **kwargs,
    )
    context = ssl.create_default_context(cafile=str(broker.ca_file) if broker.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if broker.client_cert is not None:
        context.load_cert_chain(str(broker.client_cert), str(broker.client_key))
    client.tls_set_context(context)  # check_hostname and CERT_REQUIRED: verified, never insecure
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.secret())
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_queued_messages_set(0)
    return client


def connect_properties(broker: BrokerConfig, persistent: bool) -> Any:
    """MQTT 5 CONNECT properties (None for 3.1.1)."""
    if broker.protocol != "5" or not persistent:
        return None
    paho()  # the clear error when the extra is missing
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    return properties


def connect_async(client: Any, broker: BrokerConfig, persistent: bool) -> None:
    """Start connecting in the background; paho's loop reconnects after every loss."""
    kwargs: dict[str, Any] = {"keepalive": broker.keepalive_s}
    if broker.protocol == "5":
        kwargs["clean_start"] = not persistent
        kwargs["properties"] = connect_properties(broker, persistent)
    client.connect_async(broker.host, broker.port, **kwargs)
    client.loop_start()


def failed(reason_code: Any) -> bool:
    """Whether a paho reason code (MQTT 5) or result says the broker refused."""
    return bool(getattr(reason_code, "is_failure", False))
