"""Pip route: the Python library (tracker core, models, tools) without ROS.

In a ROS 2 workspace colcon builds this package with CMakeLists.txt instead
(messages + Python + node executable); see README.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["smiletrack_ros", "smiletrack_ros.*"]),
    package_data={"smiletrack_ros": ["embedding/weights/*.safetensors", "embedding/weights/*.json"]},
)
