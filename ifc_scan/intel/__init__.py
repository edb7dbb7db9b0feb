"""Vulnerability intelligence: CISA's Known Exploited Vulnerabilities catalog and FIRST's EPSS scores (issue 31)."""
