"""MQTT: the embedded broker, the platform's subscriber, and the topic scheme."""

from m2mhub.connect.mqtt.topics import Channel, DeviceTopic, parse_topic, topic_for

__all__ = ["Channel", "DeviceTopic", "parse_topic", "topic_for"]
