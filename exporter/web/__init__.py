"""The listener: routes (/metrics, /healthz, /readyz, the landing page), the web-config file, TLS and auth."""
