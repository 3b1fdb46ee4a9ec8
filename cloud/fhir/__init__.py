"""FHIR R4 export of what the cloud holds (see docs/interop.md for the mapping)."""
