"""sgdfuse_ros: SAM-guided few-step diffusion fusion of thermal and visible cameras for ROS 2.

Everything in this package except :mod:`sgdfuse_ros.ros` is importable without ROS.
"""

__version__ = "0.1.0"
