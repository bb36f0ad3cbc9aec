"""istio-burst: String Hashr, the cloud-bursting demo, as three Python services."""

__version__ = "0.1.0"
