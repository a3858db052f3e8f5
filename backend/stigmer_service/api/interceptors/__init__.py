"""The service's server interceptors, one job each; `server.py` chains them (request id, access
log, auth, error mapping, outermost first)."""
