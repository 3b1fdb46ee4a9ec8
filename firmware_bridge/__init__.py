"""Device protocols: sans-IO codecs, async transports, device emulators."""
