"""ifc_scan: container-image scan results and CI/CD logs into weekly compliance evidence."""

__version__ = "0.1.0"
