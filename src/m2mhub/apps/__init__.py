"""Apps built on the platform: each turns stored readings into a use case (metering, fleet)."""
