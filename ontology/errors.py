"""The one error tree of journeygraph.

JourneyGraphError
├── ConfigError            bad journeygraph.yaml: names the key path
├── IngestError            a source cannot be read at all
├── EngineError ── SingularSystemError
├── StoreError ── StoreUnavailable
├── OntologyError ── UnknownPredicate, EvidenceError, PrivacyError
└── NarrationError ── GroundingError, ProviderError

Every message says what failed, names the thing (file and line, key path, id,
URI) and the next step. Caller misuse stays a plain ValueError/TypeError.
"""

from __future__ import annotations


class JourneyGraphError(Exception):
    """Root of every error journeygraph raises on purpose."""


class ConfigError(JourneyGraphError):
    """The project config is invalid; the message names the key path."""


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
