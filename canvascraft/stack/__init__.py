"""The embedded local stack: real services on loopback, each a managed process with pid file, logs and health check."""
