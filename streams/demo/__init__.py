"""The demo: a realistic journey generator, a live view of decisions, and a session
that runs broker + worker + generator + view together (`crm-triggers demo`)."""
