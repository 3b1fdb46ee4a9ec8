"""Device emulators: byte-exact device output driven by patient/device scenarios."""
