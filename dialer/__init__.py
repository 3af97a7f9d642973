"""The dialer: campaigns, lead leasing, compliance gates, pacing and dispositions over AMI."""
