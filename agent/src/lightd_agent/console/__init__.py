"""A server's console (stdin in, throttled output out) and its kept install logs."""
