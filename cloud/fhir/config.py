"""``[fhir]`` of the cloud TOML: where and how the FHIR export is pushed."""

from __future__ import annotations

from pydantic import Field, field_validator

from runtime.configbase import Section


class FhirConfig(Section):
    """A FHIR R4 server's base URL and the identifier systems of the export.

    The bearer token is never in the TOML: ``token_file`` names a file or a
    systemd credential (``credential:NAME``).
    """

    base_url: str | None = None  # e.g. https://fhir.example-hospital.org/r4
    token_file: str | None = None
    timeout_s: float = Field(30.0, gt=0)
    bundle_max_entries: int = Field(50, ge=1, le=1000)  # Medplum refuses > 8 conditional entries per transaction
    max_attempts: int = Field(6, ge=1, le=100)  # per bundle, for 429 / 5xx / connection errors
    backoff_min_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    # Identifier systems. The patient identifier is the gateway's pseudonym (keyed hash): the hospital,
    # which holds the key, maps it back to its own patient; the cloud never holds an identity.
    pseudonym_system: str = "urn:pulsegate:patient-pseudonym"
    identifier_system: str = "urn:pulsegate"  # prefix of the Observation / Device / DetectedIssue identifier systems

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/") if v else v

    @field_validator("pseudonym_system", "identifier_system")
    @classmethod
    def _uri(cls, v: str) -> str:
        if not v.startswith(("urn:", "http://", "https://")) or any(c in v for c in " |,"):
            raise ValueError("must be a URI (urn:..., http(s)://...) without spaces, '|' or ','")
        return v
