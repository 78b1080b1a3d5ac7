"""Sensors and fans over MQTT (docs/MQTT.md): the topic scheme and payloads, the ingest side
(`MqttSource`: telemetry in, fan commands out, confirmed by the devices' state) and the twin's
servers as MQTT devices (`devices.TwinDevices`, behind `rackwatch devices`)."""

from rackwatch.sources.mqtt.inventory import SOURCE, DeviceInventory
from rackwatch.sources.mqtt.source import MqttSource, discover
from rackwatch.sources.mqtt.topics import BrokerAddress

__all__ = ["SOURCE", "BrokerAddress", "DeviceInventory", "MqttSource", "discover"]
