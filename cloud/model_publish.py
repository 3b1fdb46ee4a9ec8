"""Publish a signed model folder to gateways (retained, QoS 1) on their models topic."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from wire import topics
from wire.model_offer import encode_offer, offer_from_dir


def publish_model(
    model_dir: Path,
    host: str,
    port: int,
    site: str,
    gateways: list[str],
    username: str | None = None,
    password: str | None = None,
    tls_ca: str | None = None,
    timeout_s: float = 30.0,
) -> int:
    """Publish to each gateway; returns the payload size. Raises RuntimeError if the broker does not ack."""
    offer = offer_from_dir(model_dir)
    payload = encode_offer(offer)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    if tls_ca:
        client.tls_set(ca_certs=tls_ca)
    if username:
        client.username_pw_set(username, password)
    rc = client.connect(host, port, keepalive=30)
    if rc != mqtt.MQTT_ERR_SUCCESS:
        raise RuntimeError(f"cannot connect to {host}:{port}: {mqtt.error_string(rc)}")
    client.loop_start()
    try:
        for gw in gateways:
            info = client.publish(topics.models(topics.check_id("site", site), topics.check_id("gateway", gw)),
                                  payload, qos=1, retain=True)
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise RuntimeError(f"broker did not acknowledge the model for {gw}")
    finally:
        client.disconnect()
        client.loop_stop()
    return len(payload)
