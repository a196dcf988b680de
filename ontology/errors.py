"""The one error tree of journeygraph.

JourneyGraphError          exit 2 · HTTP 400
├── NotFound               a workspace, snapshot, insight or fact that is not there · HTTP 404
├── BadInput               a request or argument that cannot be answered as given · HTTP 400
├── Conflict               the workspace is in a state that refuses this · HTTP 409
│   └── WorkspaceBusy      a run holds the workspace's lock; retry shortly · HTTP 503 + Retry-After
├── ConfigError            bad journeygraph.yaml: names the key path · HTTP 409
├── IngestError            a source cannot be read at all
├── EngineError ── SingularSystemError
├── StoreError ── StoreUnavailable (HTTP 503)
├── OntologyError ── UnknownPredicate, EvidenceError, PrivacyError
├── NarrationError ── GroundingError, ProviderError
└── DeliveryError          a webhook endpoint refused or did not answer

Each class carries its CLI exit code and HTTP status, so the CLI and the API map an error by
its class, never by its message text.

Every message says what failed, names the thing (file and line, key path, id,
URI) and the next step. Caller misuse stays a plain ValueError/TypeError.
"""

from __future__ import annotations


class JourneyGraphError(Exception):
    """Root of every error journeygraph raises on purpose."""

    exit_code: int = 2
    http_status: int = 400


class NotFound(JourneyGraphError):
    """Something asked for by name or id is not there; the message says how to list what is."""

    http_status = 404


class BadInput(JourneyGraphError):
    """A request or argument that cannot be answered as given; the message names the fix."""


class Conflict(JourneyGraphError):
    """The workspace refuses this in its current state."""

    http_status = 409


class WorkspaceBusy(Conflict):
    """Another process holds the workspace database's lock (a run is writing it); retry shortly."""

    http_status = 503


class ConfigError(JourneyGraphError):
    """The project config is invalid; the message names the key path."""

    http_status = 409


class IngestError(JourneyGraphError):
    """An event source cannot be read at all."""


class EngineError(JourneyGraphError):
    """The journey engine cannot compute a result."""


class SingularSystemError(EngineError):
    """The absorbing-chain system (I - Q) is singular or near-singular."""


class StoreError(JourneyGraphError):
    """A fact store failed."""


class StoreUnavailable(StoreError):
    """A fact store server cannot be reached."""

    http_status = 503


class OntologyError(JourneyGraphError):
    """A term or fact breaks the closed ontology."""


class UnknownPredicate(OntologyError):
    """A predicate outside the closed vocabulary."""


class EvidenceError(OntologyError):
    """An evidence payload breaks its JSON Schema."""


class PrivacyError(OntologyError):
    """Evidence would leak a user id or a property outside the allowlist."""


class NarrationError(JourneyGraphError):
    """Narration failed."""


class GroundingError(NarrationError):
    """A fact bundle failed grounding validation and is never narrated."""


class ProviderError(NarrationError):
    """An LLM provider failed after its retry budget."""


class DeliveryError(JourneyGraphError):
    """A webhook endpoint refused a delivery or did not answer; the delivery is retried later."""
