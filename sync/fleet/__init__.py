"""The company fleet: a station's MQTT uplink to its company's broker, and the commands from the
company that can only refuse (block a cylinder, lock a lane or a station, report status)."""
