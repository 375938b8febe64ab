"""The thin rclpy edge: image/message conversion, parameters, the tracker node. No tracking logic."""
