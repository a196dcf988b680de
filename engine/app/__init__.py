"""The application shell: the only layer that wires engine core, detectors and narrator together.

pipeline (one run end to end), cli, api (HTTP + the web page), views (what both show),
watch (re-run on new files, webhooks), init (the commented config template), render (text, md,
json, html feeds) and web (the page's static files).
"""
